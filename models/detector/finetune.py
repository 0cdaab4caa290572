"""Compression passes on the detector: fine-tuning through the one trainer, and a lean BER.

Contract: :func:`finetune` runs :func:`quant.trainer.fit` on freshly sampled detection batches
(the data of ``detector.train``: one SNR per vector, uniform in the config's training range, MSE
to the BPSK symbols) with the caller's callbacks (masks, regularisers); it adds no loop of its
own. :func:`ber` measures the BER of neural detectors on exactly the vectors
:func:`models.detector.evaluate.evaluate_ber` draws (same seeds, same chunks), without the classical
baselines (the sphere decoder dominates that function's run time); MMSE is cheap and optional.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.detector.config import QuantConfig
from models.detector.evaluate import evaluate_ber
from models.detector.train import detector_batches
from quant.trainer import Callback, FitResult, fit, mse


def finetune(
    model: torch.nn.Module,
    cfg: QuantConfig,
    *,
    steps: int,
    lr: float,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    description: str = "fine-tune",
) -> FitResult:
    """Adam at a constant ``lr`` for ``steps`` steps of ``cfg.batch_size`` fresh vectors.

    Args:
        model: Trained in place (float or QAT), left in eval mode.
        cfg: Channel, training SNR range, batch size and threads.
        steps: Optimizer steps.
        lr: Learning rate (1e-4 for pruning/quantization fine-tuning in the reference papers).
        callbacks: Passes of the trainer (e.g. MaskCallback, GroupLasso).
        seed: Seed of the data stream.
        description: Label of the progress bar.
    """
    torch.set_num_threads(cfg.torch_threads)
    batches = detector_batches(cfg, torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, batches, mse, opt, steps=steps, callbacks=callbacks, description=description)


def ber(
    cfg: QuantConfig,
    detectors: dict[str, torch.nn.Module],
    *,
    seed: int = 1234,
    with_mmse: bool = False,
) -> dict:
    """BER per SNR (``cfg.eval_snr_db``, ``cfg.eval_bits_per_snr``) of each detector, MMSE
    optionally (never the slow sphere decoder): :func:`models.detector.evaluate.evaluate_ber`."""
    return evaluate_ber(cfg, detectors, seed, baselines=("mmse",) if with_mmse else ())


def no_ber_loss(errors: Sequence[int], ref_errors: Sequence[int], bits: int, z: float = 2.0):
    """True when, at every SNR, the BER is not worse than the reference's by more than ``z``
    standard errors of the difference of two binomial estimates (each from ``bits`` bits)."""
    for e, r in zip(errors, ref_errors, strict=True):
        p, q = e / bits, r / bits
        sd = np.sqrt((p * (1 - p) + q * (1 - q)) / bits)
        if p - q > z * max(sd, 1.0 / bits):
            return False
    return True
