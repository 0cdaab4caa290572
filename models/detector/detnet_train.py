"""DetNet training, incremental training and BER evaluation (Green DetNet's regularisers,
pruning and accounting are in :mod:`models.detector.green`).

Contract: :func:`train_detnet` trains a float :class:`models.detector.detnet.DetNet` through the one
trainer (:func:`quant.trainer.fit`) on fresh batches drawn every step from :mod:`.mimo`
(SNR uniform in dB per vector, i.i.d. channel by default) and returns the trained model and the
:class:`~quant.trainer.FitResult`. :func:`incremental_train` grows the network a few layers at a
time, freezing the trained ones, until the loss gain is negligible.
:func:`evaluate_detnet_ber` measures BER vs SNR of DetNets (given H) and the classical detectors
on the same seeded vectors.

Reproduce the float checkpoint of the report
(see ``python -m models.detector.detnet_train --help``)::

    python -m models.detector.detnet_train --out /tmp/detnet_l10_iid.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.detector.detnet import DetNet, DetNetShape, detnet_loss, least_squares
from models.detector.detnet_cost import detnet_account
from models.detector.evaluate import BASELINES, snr_at_ber
from models.detector.mimo import (
    ChannelKind,
    DetectionConfig,
    sample_batch,
    sample_numpy,
    uniform_snr_db,
)
from qphy.errors import ConfigError
from quant import checkpoint
from quant.trainer import Callback, FitResult, fit

log = logging.getLogger(__name__)

Inputs = tuple[torch.Tensor, torch.Tensor]
Targets = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DetNetTrainConfig:
    """How a DetNet is trained.

    Attributes:
        detection: The detection problem (sizes, channel kind); i.i.d. 30 x 20 BPSK by default.
        shape: Network sizes; its n_rx/k_tx must match ``detection``.
        steps: Optimizer steps (one fresh batch each).
        batch: Vectors per batch.
        lr: Adam learning rate at step 0.
        lr_decay: Multiplicative LR decay per ``lr_decay_steps`` steps (applied smoothly every
            step, as an exponential schedule).
        lr_decay_steps: Steps over which the LR shrinks by ``lr_decay``.
        snr_low_db: Lowest training SNR (dB), drawn uniformly per vector.
        snr_high_db: Highest training SNR (dB).
        seed: Seeds the weights and the data stream.
    """

    detection: DetectionConfig = field(
        default_factory=lambda: DetectionConfig(channel=ChannelKind.IID_GAUSSIAN)
    )
    shape: DetNetShape = field(default_factory=DetNetShape)
    steps: int = 5000
    batch: int = 500
    lr: float = 1e-3
    lr_decay: float = 0.97
    lr_decay_steps: int = 1000
    snr_low_db: float = 7.0
    snr_high_db: float = 14.0
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.shape.n_rx, self.shape.k_tx) != (self.detection.n_rx, self.detection.k_tx):
            raise ConfigError(
                f"DetNet shape {self.shape.n_rx}x{self.shape.k_tx} does not match the detection "
                f"problem {self.detection.n_rx}x{self.detection.k_tx}"
            )
        if self.steps < 0 or self.batch < 1 or self.lr_decay_steps < 1:
            raise ConfigError("steps must be >= 0, batch and lr_decay_steps >= 1")
        if not (0.0 < self.lr and 0.0 < self.lr_decay <= 1.0):
            raise ConfigError(f"need lr > 0 and lr_decay in (0, 1], got {self.lr}, {self.lr_decay}")


# ---------------------------------------------------------------------------------------------
# Data and loss
# ---------------------------------------------------------------------------------------------


def make_batches(
    cfg: DetNetTrainConfig, generator: torch.Generator
) -> Callable[[], tuple[Inputs, Targets]]:
    """A batch source for :func:`quant.trainer.fit`: each call draws a fresh batch.

    Returns:
        Callable giving ``((y, H), (x, x_LS))``, float32, with H of shape (B, N, K).
    """

    def draw() -> tuple[Inputs, Targets]:
        snr = uniform_snr_db(cfg.batch, cfg.snr_low_db, cfg.snr_high_db, generator)
        y, x, h, _ = sample_batch(cfg.detection, cfg.batch, snr, generator)
        h = h.contiguous()
        return (y, h), (x, least_squares(y, h))

    return draw


def loss_fn(outputs: torch.Tensor, targets: Targets) -> torch.Tensor:
    """:func:`.detnet.detnet_loss` in the trainer's ``loss_fn(outputs, targets)`` form."""
    x, x_ls = targets
    return detnet_loss(outputs, x, x_ls)


def _optimizer(params: Iterable[nn.Parameter], cfg: DetNetTrainConfig):
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gamma = cfg.lr_decay ** (1.0 / cfg.lr_decay_steps)
    return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)


def train_detnet(
    cfg: DetNetTrainConfig,
    model: DetNet | None = None,
    callbacks: Sequence[Callback] = (),
    steps: int | None = None,
    seed: int | None = None,
    description: str = "detnet",
) -> tuple[DetNet, FitResult]:
    """Trains (a new, or the given) DetNet with Adam and an exponential LR decay.

    Args:
        cfg: Training settings.
        model: Continue training this model (e.g. fine-tuning after pruning); a new one seeded
            by ``cfg.seed`` when None.
        callbacks: Trainer callbacks (regularisers, masks).
        steps: Overrides ``cfg.steps``.
        seed: Seeds the data stream (default ``cfg.seed``; give another one to fine-tune on
            fresh data).
        description: Progress label.

    Returns:
        ``(model, fit_result)``; the model is trained in place and left in eval mode.
    """
    seed = cfg.seed if seed is None else seed
    if model is None:
        torch.manual_seed(cfg.seed)
        model = DetNet(cfg.shape)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = _optimizer(params, cfg)
    result = fit(
        model,
        make_batches(cfg, gen),
        loss_fn,
        opt,
        steps=cfg.steps if steps is None else steps,
        scheduler=sched,
        callbacks=callbacks,
        description=description,
    )
    return model, result


@torch.no_grad()
def validation_loss(
    model: DetNet, cfg: DetNetTrainConfig, n_vectors: int = 5000, last_only: bool = False
) -> float:
    """The training loss on one fixed, seeded validation batch (over the active layers), or
    with ``last_only`` the last active layer's ``mean ||x - x_L||^2 / ||x - x_LS||^2`` (which,
    unlike the log-weighted sum, compares networks of different depths)."""
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    inputs, targets = make_batches(replace(cfg, batch=n_vectors), gen)()
    model.eval()
    out = model(inputs)
    if last_only:
        x, x_ls = targets
        err = ((x - out[-1]) ** 2).sum(dim=-1) / ((x - x_ls) ** 2).sum(dim=-1)
        return float(err.mean())
    return float(loss_fn(out, targets))


# ---------------------------------------------------------------------------------------------
# Incremental training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of :func:`incremental_train`."""

    layers: int
    steps: int
    val_loss: float
    wall_s: float


def gain_negligible(prev_loss: float, loss: float, rel_tol: float) -> bool:
    """The incremental stopping rule: the loss fell by less than ``rel_tol`` of the previous
    one (relative)."""
    return (prev_loss - loss) < rel_tol * abs(prev_loss)


def incremental_train(
    cfg: DetNetTrainConfig,
    max_layers: int,
    start_layers: int = 2,
    add_layers: int = 1,
    steps_per_stage: int = 1000,
    rel_tol: float = 0.01,
    callbacks: Sequence[Callback] = (),
    on_stage: Callable[[DetNet, Stage], None] | None = None,
) -> tuple[DetNet, list[Stage]]:
    """Trains the first ``start_layers`` layers, freezes them, adds ``add_layers`` new ones,
    trains those only, and so on, until the validation loss improves by less than ``rel_tol``
    (relative) from one stage to the next, or ``max_layers`` is reached (``rel_tol = 0``
    grows to ``max_layers``). ``callbacks`` (e.g. a Green DetNet regulariser) join every
    stage's training; ``on_stage(model, stage)`` sees the model after each stage (its
    ``active_layers`` set to the stage's depth).

    The loss of a stage is over its active layers; ``log(l)`` gives layer 1 no weight, hence
    ``start_layers >= 2``. The returned model keeps only the layers the stopping rule accepted
    (the stage without enough gain is dropped).

    The stopping rule compares the last layer's normalised error
    (:func:`validation_loss` with ``last_only``), not the log-weighted sum over the active
    layers, which grows with every added term.

    Returns:
        ``(model, stages)``: the model (eval mode, all parameters trainable again) and the
        history of stages.
    """
    if not 2 <= start_layers <= max_layers or add_layers < 1:
        raise ConfigError(
            f"need 2 <= start_layers <= max_layers and add_layers >= 1, got {start_layers}, "
            f"{max_layers}, {add_layers}"
        )
    torch.manual_seed(cfg.seed)
    full = DetNet(replace(cfg.shape, n_layers=max_layers))
    stages: list[Stage] = []
    active = start_layers
    prev = math.inf
    while True:
        full.active_layers = active
        for i, layer in enumerate(full.layers):
            trainable = (active - (add_layers if stages else start_layers)) <= i < active
            for p in layer.parameters():
                p.requires_grad_(trainable)
        _, res = train_detnet(
            cfg,
            full,
            steps=steps_per_stage,
            seed=cfg.seed + 100 * len(stages),
            callbacks=callbacks,
            description=f"incremental L={active}",
        )
        val = validation_loss(full, cfg, last_only=True)
        stages.append(Stage(active, steps_per_stage, val, res.wall_s))
        if on_stage is not None:
            on_stage(full, stages[-1])
        log.info("incremental: %d layers, validation loss %.4f", active, val)
        if rel_tol > 0 and stages[:-1] and gain_negligible(prev, val, rel_tol):
            active -= add_layers
            break
        prev = val
        if active >= max_layers:
            break
        active = min(max_layers, active + add_layers)
    for p in full.parameters():
        p.requires_grad_(True)
    model = DetNet(replace(cfg.shape, n_layers=active))
    model.load_state_dict(
        {k: v for k, v in full.state_dict().items() if int(k.split(".")[1]) < active}
    )
    return model.eval(), stages


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def evaluate_detnet_ber(
    detection: DetectionConfig,
    detectors: Mapping[str, DetNet],
    snr_db: Sequence[float],
    n_vectors: int,
    seed: int = 1234,
    baselines: Sequence[str] = ("mmse", "ml"),
    chunk: int = 5000,
) -> dict:
    """BER per SNR of DetNets (fed y and H) and classical baselines on the same vectors.

    One seeded stream per SNR point (``default_rng([seed, index])``), as in
    :func:`models.detector.evaluate.evaluate_ber`.

    Returns:
        ``{"snr_db", "ber": {name: [...]}, "errors": {name: [...]}, "bits_simulated_per_snr"}``.
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baselines {unknown}; known: {', '.join(BASELINES)}")
    names = list(detectors) + list(baselines)
    errors = {name: np.zeros(len(snr_db), dtype=np.int64) for name in names}
    for si, snr in enumerate(snr_db):
        rng = np.random.default_rng([seed, si])
        done = 0
        while done < n_vectors:
            b = min(chunk, n_vectors - done)
            y, x, h, sigma2 = sample_numpy(detection, b, snr, rng)
            yt = torch.from_numpy(y.astype(np.float32))
            ht = torch.from_numpy(h.astype(np.float32))
            with torch.no_grad():
                for name, model in detectors.items():
                    model.eval()
                    xh = np.where(model(yt, ht)[-1].numpy() < 0.0, -1.0, 1.0)
                    errors[name][si] += int(np.sum(xh != x))
            for name in baselines:
                errors[name][si] += int(np.sum(BASELINES[name](y, h, sigma2) != x))
            done += b
    bits = n_vectors * detection.k_tx
    return {
        "snr_db": [float(s) for s in snr_db],
        "ber": {name: (errors[name] / bits).tolist() for name in names},
        "errors": {name: errors[name].tolist() for name in names},
        "bits_simulated_per_snr": int(bits),
    }


# ---------------------------------------------------------------------------------------------
# Command line (reproduces the float checkpoint and its BER table)
# ---------------------------------------------------------------------------------------------


def detnet_meta(cfg: DetNetTrainConfig, **extra) -> dict:
    """Checkpoint metadata: everything needed to rebuild and retrain the model."""
    d = asdict(cfg)
    d["detection"]["channel"] = cfg.detection.channel.value
    d["detection"]["modulation"] = cfg.detection.modulation.value
    return {"arch": "detnet", "train_config": d, **extra}


def load_detnet(path: Path) -> tuple[DetNet, dict]:
    """Rebuilds the DetNet of a checkpoint written by :func:`quant.checkpoint.save` with
    :func:`detnet_meta`; returns ``(model in eval mode, meta)``.

    Raises:
        CheckpointError: Missing, unreadable or foreign file (see :func:`quant.checkpoint.read`).
        ConfigError: The checkpoint holds another architecture.
    """
    payload = checkpoint.read(path, "python -m models.detector.detnet_train --out PATH")
    meta = payload["meta"]
    if meta.get("arch") != "detnet":
        raise ConfigError(f"{path} holds a {meta.get('arch')!r} model, not a DetNet")
    model = DetNet(DetNetShape(**meta["train_config"]["shape"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), meta


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m models.detector.detnet_train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-vectors", type=int, default=20000)
    p.add_argument("--ml-vectors", type=int, default=20000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(a.threads)
    cfg = DetNetTrainConfig(
        shape=DetNetShape(n_layers=a.layers), steps=a.steps, batch=a.batch, seed=a.seed
    )
    t0 = time.perf_counter()
    model, res = train_detnet(cfg)
    train_s = time.perf_counter() - t0
    checkpoint.save(model, a.out, detnet_meta(cfg, train_wall_s=train_s))
    snrs = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]
    r = evaluate_detnet_ber(
        cfg.detection, {"detnet": model}, snrs, a.eval_vectors, baselines=("mmse",)
    )
    r_ml = evaluate_detnet_ber(cfg.detection, {}, snrs, a.ml_vectors, baselines=("ml",))
    r["ber"]["ml"] = r_ml["ber"]["ml"]
    r["errors"]["ml"] = r_ml["errors"]["ml"]
    r["ml_bits_simulated_per_snr"] = r_ml["bits_simulated_per_snr"]
    r["snr_at_1e-3"] = {k: snr_at_ber(r["snr_db"], v, 1e-3) for k, v in r["ber"].items()}
    r["train"] = {"steps": res.steps, "final_loss": res.mean_recent_loss, "wall_s": train_s}
    r["account"] = detnet_account(model)
    a.out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    print(json.dumps({k: r[k] for k in ("ber", "snr_at_1e-3", "train")}, indent=2))


if __name__ == "__main__":
    main()
