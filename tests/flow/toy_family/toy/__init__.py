"""A toy network family, as a user would drop it into ``models/``: this folder and nothing else.

The whole family: a 12 -> 16 -> 4 Brevitas MLP trained by the one trainer, and its Target.
tests/flow/test_toy_target.py puts the folder that holds this package on ``models.__path__``;
discovery (models.families) finds it like any family and ``qphy build toy-mlp`` works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qphy import targets
from qphy.variants import Bits


@dataclass(frozen=True)
class ToyConfig:
    bits: Bits | None
    hidden: int = 16

    @property
    def name(self) -> str:
        return f"toymlp_{self.bits.tag if self.bits else 'float'}_h{self.hidden}"


@targets.register
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
