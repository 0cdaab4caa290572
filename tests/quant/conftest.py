"""Small calibrated QAT models for fast quant tests."""

from __future__ import annotations

import pytest
import torch

from models.detector.fullycon import FullyConShape
from models.detector.qat import QuantFullyCon
from qphy.variants import Bits
from quant.recipes import Recipe

SMALL = FullyConShape(n_rx=12, k_tx=6, hidden=32, n_hidden_layers=2)


def calibrated(bits: Bits, shape: FullyConShape = SMALL, seed: int = 0) -> QuantFullyCon:
    """A randomly initialised QAT FullyCon whose activation quantizers saw a few batches."""
    torch.manual_seed(seed)
    model = QuantFullyCon(Recipe(bits), shape)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(256, shape.n_rx) * 2)
    return model.eval()


@pytest.fixture
def small_w4a4() -> QuantFullyCon:
    return calibrated(Bits(4, 4))


def teacher_batches(n_in: int, n_out: int, seed: int = 1, batch: int = 64):
    """A seeded batch source for :func:`quant.trainer.fit`: inputs ``2 N(0, 1)`` and targets
    ``tanh(x @ T)`` for a fixed random teacher matrix T."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(n_in, n_out, generator=gen)

    def fn():
        x = torch.randn(batch, n_in, generator=gen) * 2
        return x, torch.tanh(x @ teacher)

    return fn
