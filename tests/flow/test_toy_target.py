"""A new target plugs in with a registration only: a toy MLP built to a bit-exact verdict, with
no edit to the CLI, hw or sim (the point of the Target registry)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from qphy import targets
from qphy.cli import main
from qphy.variants import Bits

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


# ---- the whole toy target: a 12 -> 16 -> 4 Brevitas MLP, trained by the one trainer ----------
@dataclass(frozen=True)
class ToyConfig:
    bits: Bits | None
    hidden: int = 16

    @property
    def name(self) -> str:
        return f"toymlp_{self.bits.tag if self.bits else 'float'}_h{self.hidden}"


class ToyMlp(targets.Target):
    name = "toy-mlp"
    options = (targets.Option("--hidden", "hidden", int, help="hidden units"),)

    def config(self, bits, **options):
        return ToyConfig(bits, **options)

    def load_or_train(self, cfg, ckpt_dir=None, retrain=False):
        import torch
        from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

        from quant.recipes import Recipe
        from quant.trainer import fit, mse

        torch.manual_seed(0)
        r = Recipe(cfg.bits)
        model = torch.nn.Sequential(
            QuantIdentity(return_quant_tensor=True, **r.input()),
            QuantLinear(12, cfg.hidden, bias=True, **r.weight(), **r.bias()),
            QuantReLU(return_quant_tensor=True, **r.relu()),
            QuantLinear(cfg.hidden, 4, bias=True, **r.weight(), **r.bias()),
            QuantIdentity(**r.output()),
        )
        w = torch.randn(12, 4)
        gen = torch.Generator().manual_seed(1)

        def batch():
            x = torch.randn(64, 12, generator=gen)
            return x, torch.tanh(x @ w)

        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, batch, mse, opt, steps=60, description="toy")
        return model.eval()

    def golden_inputs(self, cfg, model, n):
        x = np.random.default_rng(2).standard_normal((n, 12)).astype(np.float32)
        x[1::2] *= 64.0  # saturate the input quantizer
        return x

    def hw_defaults(self, cfg):
        return targets.HwDefaults(target_cycles=16, vectors=300)


# ----------------------------------------------------------------------------------------------


@pytest.fixture
def toy_registered():
    targets.register(ToyMlp)
    yield
    targets.unregister(ToyMlp.name)


def test_toy_target_builds_bit_exact_through_the_cli(verilator, toy_registered, tmp_path):
    out = tmp_path / "toy"
    assert main(["build", "toy-mlp", "--bits", "w4a4", "--hidden", "16", "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["variant"] == "toymlp_w4a4_h16"
    assert rep["bit_exact"] is True and rep["mismatches"] == 0 and rep["vectors_checked"] == 300
    assert rep["within_budget"] is True and rep["latency_cycles"] > 0
    # The target's own option is refused for another target, by name.
    assert main(["build", "detector", "--hidden", "8", "--out", str(tmp_path / "x")]) == 2
