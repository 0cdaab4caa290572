"""Training of the FullyCon detector: float first (Adam 1e-3), then QAT fine-tuning (Adam 1e-4).

Data are sampled on the fly (``detector.mimo``); each training vector gets its own SNR, uniform in
[train_snr_db_min, train_snr_db_max]. The loss is the MSE between the soft output and the
transmitted BPSK symbols, as for the FullyCon/DetNet family.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.detector.config import QuantConfig
from models.detector.data import detection_config
from models.detector.fullycon import FullyCon, FullyConShape
from models.detector.mimo import sample_batch
from models.detector.qat import QuantFullyCon
from quant.recipes import Recipe
from quant.trainer import fit, mse


def fit_detector(
    model: torch.nn.Module, cfg: QuantConfig, steps: int, lr: float, what: str
) -> float:
    """Adam on fresh batches for ``steps`` steps; returns the mean loss of the last 100 steps."""
    torch.set_num_threads(cfg.torch_threads)
    gen = torch.Generator().manual_seed(cfg.seed + (0 if cfg.bits is None else 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Halve the learning rate twice over the run: a smoother end for both float and QAT.
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(steps * 0.6), int(steps * 0.85)], gamma=0.5
    )

    batches = detector_batches(cfg, gen)
    result = fit(model, batches, mse, opt, steps=steps, scheduler=sched, description=what)
    return result.mean_recent_loss


def detector_batches(
    cfg: QuantConfig, gen: torch.Generator
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A batch source for :func:`quant.trainer.fit`: each call draws ``cfg.batch_size`` fresh
    vectors ``(y, x)`` of the config's channel, one SNR per vector uniform in its training range."""
    det = detection_config(cfg)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = cfg.train_snr_db_min, cfg.train_snr_db_max
        snr = lo + (hi - lo) * torch.rand(cfg.batch_size, generator=gen)
        y, x, _, _ = sample_batch(det, cfg.batch_size, snr, gen)
        return y, x

    return batch


def train_float(cfg: QuantConfig, shape: FullyConShape | None = None) -> tuple[FullyCon, float]:
    """Train the float FullyCon from scratch (seeded)."""
    torch.manual_seed(cfg.seed)
    model = FullyCon(shape)
    return model, fit_detector(model, cfg, cfg.float_steps, cfg.float_lr, "float training")


def train_qat(cfg: QuantConfig, float_model: FullyCon) -> tuple[QuantFullyCon, float]:
    """QAT fine-tuning of ``cfg.bits`` starting from a trained float model."""
    if cfg.bits is None:
        raise ValueError("train_qat needs cfg.bits")
    torch.manual_seed(cfg.seed)
    recipe = Recipe(cfg.bits, per_channel_weights=cfg.per_channel_weights)
    model = QuantFullyCon(recipe, float_model.shape)
    model.load_float(float_model)
    return model, fit_detector(model, cfg, cfg.qat_steps, cfg.qat_lr, f"QAT {cfg.bits.tag}")
