"""The CSI encoder's quant-stage jobs: float autoencoder training, QAT of the encoder, NMSE,
checkpoints and the verified QONNX export (what ``qphy train/build csi-encoder`` call).

Data: the training/validation sets are one generated set (``train_samples`` drops, seed 0,
split 85/15); the test set is a separate set (``test_samples`` drops, seed 1), so NMSE figures
and golden vectors never come from training data, and a build only has to generate the small
test set.

Training (Adam, MSE on the [0, 1]-scaled matrices, as CsiNet): the float autoencoder for
``float_steps``, then the quantized encoder (``models/csi/qat.py``, BatchNorm folded) with the
float decoder for ``qat_steps``. NMSE (dB) is measured on the complex angular-delay matrices of
the test set (``models.csi.data.nmse_db_scaled``), for the float model and the quantized one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from models.csi.csinet import ARCHS, CODEWORD_SIZES, model_cost
from models.csi.data import DEFAULT_CACHE_DIR, CsiDataConfig, nmse_db_scaled
from models.csi.qat import FIRE_EXPAND, QuantAutoencoder
from models.csi.store import load_or_generate
from models.registry import build_model
from qphy.config import reject_unknown_keys
from qphy.errors import CheckpointError, ConfigError
from qphy.variants import Bits, parse_bits
from quant import checkpoint
from quant.trainer import AfterStep, Callback, fit, mse

log = logging.getLogger(__name__)

_EVAL_CHUNK = 500


@dataclass(frozen=True)
class CsiConfig:
    """Everything that decides one CSI encoder variant and how it is trained.

    Attributes:
        arch: ``csinetplus``, ``convcsinet`` or ``convsqucsinet``.
        cr: Compression ratio (4, 8, 16, 32).
        scenario: ``indoor`` (InH) or ``outdoor`` (UMi).
        bits: Weight/activation widths of the quantized encoder; None = the float model.
        codeword_bits: Width of each codeword element (the encoder's output quantizer).
        n_refine: RefineNet blocks in the float decoder. CsiNet+ has 5; the shipped models use 1
            because CPU training time is dominated by them (0.45 s against 1.2 s per step of
            200 for CsiNet+ CR 4). The encoder, the part on the FPGA, is unaffected.
        width: Channel width w of the conv nets.
        train_samples: Drops in the generated train+validation set (85/15).
        test_samples: Drops in the separate test set.
        float_steps: Adam steps of float training (lr ``float_lr``).
        qat_steps: Adam steps of QAT (lr ``qat_lr``), encoder and decoder together.
        batch_size: Samples per step.
        seed: Seed of initialisation and batch order.
        torch_threads: Intra-op threads (1 is fastest on a loaded 2-core machine).
        fire_expand: ConvSquCsiNet's quantized fire modules: ``merged`` (one 3x3 conv) or
            ``concat`` (two expand branches and a real concat, qphy's RTL fork/concat).
    """

    arch: str = "csinetplus"
    cr: int = 4
    scenario: str = "indoor"
    bits: Bits | None = None
    codeword_bits: int = 8
    n_refine: int = 1
    width: int = 16
    train_samples: int = 20000
    test_samples: int = 2000
    float_steps: int = 1000
    qat_steps: int = 400
    batch_size: int = 200
    float_lr: float = 1e-3
    qat_lr: float = 3e-4
    seed: int = 0
    torch_threads: int = 1
    fire_expand: str = "merged"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown --arch {self.arch!r}; known: {', '.join(ARCHS)}")
        if isinstance(self.cr, bool) or self.cr not in CODEWORD_SIZES:
            raise ConfigError(f"--cr must be one of {sorted(CODEWORD_SIZES)}, got {self.cr!r}")
        if self.scenario not in ("indoor", "outdoor"):
            raise ConfigError(f"--scenario must be indoor or outdoor, got {self.scenario!r}")
        if isinstance(self.bits, str):
            object.__setattr__(self, "bits", parse_bits(self.bits))
        if not 2 <= int(self.codeword_bits) <= 16:
            raise ConfigError(f"codeword_bits must be 2..16, got {self.codeword_bits!r}")
        for name in ("float_steps", "qat_steps", "batch_size", "train_samples", "test_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.fire_expand not in FIRE_EXPAND:
            raise ConfigError(
                f"--fire-expand must be one of {', '.join(FIRE_EXPAND)}, got {self.fire_expand!r}"
            )
        if self.batch_size == 0 or self.train_samples < 20 or self.test_samples == 0:
            raise ConfigError("batch_size, test_samples must be positive; train_samples >= 20")

    @property
    def float_name(self) -> str:
        return f"{self.arch}_cr{self.cr}_float_{self.scenario}"

    @property
    def name(self) -> str:
        """Variant name, e.g. ``csinetplus_cr4_w4a4c8_indoor`` (c = codeword bits)."""
        if self.bits is None:
            return self.float_name
        # The concat form is its own QAT model (another state dict); the float model is shared.
        fire = "_concat" if self.fire_expand == "concat" else ""
        return f"{self.arch}_cr{self.cr}_{self.bits.tag}c{self.codeword_bits}{fire}_{self.scenario}"

    def model_kwargs(self) -> dict:
        kw = {"cr": self.cr, "n_refine": self.n_refine}
        if self.arch != "csinetplus":
            kw["width"] = self.width
        return kw

    def to_json(self) -> dict:
        d = asdict(self)
        d["bits"] = self.bits.tag if self.bits else None
        return d

    @classmethod
    def from_json(cls, data: dict) -> CsiConfig:
        reject_unknown_keys(cls, data, "CSI config")
        return cls(**data)


def datasets(cfg: CsiConfig, cache_dir: Path = DEFAULT_CACHE_DIR, need_train: bool = True):
    """(train, val, test) ``(n, 2, 32, 32)`` float32 tensors in [0, 1]; train/val None unless
    ``need_train``."""
    test = load_or_generate(
        CsiDataConfig(scenario=cfg.scenario, n_samples=cfg.test_samples, seed=1), cache_dir
    ).tensor()
    if not need_train:
        return None, None, test
    full = load_or_generate(
        CsiDataConfig(scenario=cfg.scenario, n_samples=cfg.train_samples, seed=0), cache_dir
    ).tensor()
    n_train = int(round(0.85 * len(full)))
    return full[:n_train], full[n_train:], test


@torch.no_grad()
def nmse(model: torch.nn.Module, x: torch.Tensor) -> float:
    """NMSE (dB) of ``model`` (float or quantized autoencoder) on ``x``, in eval mode."""
    was = model.training
    model.eval()
    try:
        out = torch.cat([model(x[i : i + _EVAL_CHUNK]) for i in range(0, len(x), _EVAL_CHUNK)])
    finally:
        model.train(was)
    return nmse_db_scaled(x, out)


def fit_autoencoder(
    model: torch.nn.Module,
    train: torch.Tensor,
    val: torch.Tensor,
    steps: int,
    lr: float,
    cfg: CsiConfig,
    what: str,
    after_step=None,
    callbacks: Sequence[Callback] = (),
) -> dict:
    """Adam (cosine schedule) on random training batches through :func:`quant.trainer.fit`,
    autoencoder MSE; ``after_step`` (a plain function) and ``callbacks`` are trainer passes.
    Returns the steps, the last training loss, the validation NMSE (dB) and the wall time."""
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr / 20)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = train[torch.randint(0, len(train), (cfg.batch_size,), generator=gen)]
        return x, x

    callbacks = [*callbacks, *([] if after_step is None else [AfterStep(after_step)])]
    result = fit(
        model, batch, mse, opt, steps=steps, scheduler=sched, callbacks=callbacks, description=what
    )
    return {
        "steps": steps,
        "final_train_loss": result.last_loss,
        "val_nmse_db": nmse(model, val),
        "train_s": round(result.wall_s, 1),
    }


def build(cfg: CsiConfig, state: dict | None = None) -> torch.nn.Module:
    """The (seeded) model of ``cfg`` -- float autoencoder, or QuantAutoencoder when ``cfg.bits``
    -- with ``state`` loaded when given (CheckpointError when it does not fit)."""
    torch.manual_seed(cfg.seed)
    model: torch.nn.Module = build_model(cfg.arch, **cfg.model_kwargs())
    if cfg.bits is not None:
        model.eval()
        model = QuantAutoencoder(model, cfg.bits, cfg.codeword_bits, cfg.fire_expand)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint does not fit {cfg.name}: {exc}") from exc
    return model


def load(cfg: CsiConfig, ckpt_dir: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Model and metadata of ``cfg`` from its checkpoint (CheckpointError if absent/corrupt)."""
    path = checkpoint.path_for(cfg.name, ckpt_dir)
    payload = checkpoint.read(
        path,
        f"qphy train csi-encoder --arch {cfg.arch} --cr {cfg.cr} --scenario {cfg.scenario} "
        f"--bits {cfg.bits.tag if cfg.bits else 'float'} --codeword-bits {cfg.codeword_bits}"
        + (" --fire-expand concat" if cfg.fire_expand == "concat" else ""),
    )
    meta = payload["meta"]
    if meta.get("variant") != cfg.name:
        raise CheckpointError(f"{path} holds {meta.get('variant')!r}, not {cfg.name!r}")
    saved = CsiConfig.from_json(meta["config"])
    model = build(replace(cfg, n_refine=saved.n_refine, width=saved.width), payload["state_dict"])
    model.eval()
    return model, meta


def train(cfg: CsiConfig, ckpt_dir: Path | None = None, cache_dir: Path = DEFAULT_CACHE_DIR):
    """Train ``cfg`` (float, or QAT from the float checkpoint, trained first if absent), save
    its checkpoint and return (model, meta)."""
    torch.set_num_threads(cfg.torch_threads)
    train_x, val_x, test_x = datasets(cfg, cache_dir)
    if cfg.bits is None:
        model = build(cfg)
        stats = fit_autoencoder(model, train_x, val_x, cfg.float_steps, cfg.float_lr, cfg, cfg.name)
    else:
        float_model, _ = load_or_train(
            replace(cfg, bits=None, fire_expand="merged"), ckpt_dir, cache_dir
        )
        model = QuantAutoencoder(float_model, cfg.bits, cfg.codeword_bits, cfg.fire_expand)
        stats = fit_autoencoder(
            model,
            train_x,
            val_x,
            cfg.qat_steps,
            cfg.qat_lr,
            cfg,
            cfg.name,
            after_step=model.encoder.apply_masks,
        )
    model.eval()
    meta = {
        "arch": cfg.arch,
        "variant": cfg.name,
        "config": cfg.to_json(),
        "test_nmse_db": nmse(model, test_x),
        **stats,
    }
    checkpoint.save(model, checkpoint.path_for(cfg.name, ckpt_dir), meta)
    log.info(
        "%s: test NMSE %.2f dB -> %s",
        cfg.name,
        meta["test_nmse_db"],
        checkpoint.path_for(cfg.name, ckpt_dir),
    )
    return model, meta


def load_or_train(
    cfg: CsiConfig, ckpt_dir: Path | None = None, cache_dir=DEFAULT_CACHE_DIR, retrain=False
):
    """(model, meta) of ``cfg`` from its checkpoint, or :func:`train` when there is none."""
    return checkpoint.load_or_train(
        cfg.name,
        ckpt_dir,
        lambda _path: load(cfg, ckpt_dir),
        lambda _path: train(cfg, ckpt_dir, cache_dir),
        retrain,
    )


def evaluate(cfg: CsiConfig, ckpt_dir: Path | None = None, cache_dir=DEFAULT_CACHE_DIR) -> dict:
    """NMSE (dB) on the test set of the float model and of the quantized variant ``cfg``."""
    if cfg.bits is None:
        raise ConfigError("evaluate needs a quantized variant (--bits wXaY)")
    torch.set_num_threads(cfg.torch_threads)
    *_, test_x = datasets(cfg, cache_dir, need_train=False)
    float_model, _ = load_or_train(replace(cfg, bits=None), ckpt_dir, cache_dir)
    quant_model, _ = load_or_train(cfg, ckpt_dir, cache_dir)
    cost = model_cost(float_model)
    return {
        "variant": cfg.name,
        "test_samples": len(test_x),
        "nmse_db": {"float": nmse(float_model, test_x), "quant": nmse(quant_model, test_x)},
        "codeword_bits": cfg.codeword_bits,
        "codeword_size": float_model.codeword_size,
        "feedback_bits": cfg.codeword_bits * float_model.codeword_size,
        "encoder_params": cost.encoder_params,
        "encoder_flops": cost.encoder_flops,
        "params": cost.params,
    }
