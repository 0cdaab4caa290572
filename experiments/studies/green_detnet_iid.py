"""``qphy experiment green-detnet-iid``: the Green DetNet variants of the varying-channel DetNet
as hardware, the removed units and layers physically gone, beside the dense DetNet.

Every row starts from one float i.i.d. DetNet (``float_checkpoint``, as ``qphy train detector
--arch detnet --channel iid`` writes it; empty: trained here for ``float_steps`` at the step mix
``float_mix``, the defaults of ``qphy train``):

* ``dense``: the float model as it is.
* ``dense-ft``: the dense control of ``ri``'s float training: all layers, mix set to
  ``ri_mix``, fine-tuned ``ri_finetune_steps`` at ``ri_finetune_lr`` (no teacher).
* ``gl`` / ``sgl``: ``penalty_steps`` fine-tuning steps with the hidden-unit group lasso
  (:class:`models.detector.green_iid.HiddenUnitLasso`, ``gl``; SGL: ``sgl_gl`` and
  ``sgl_l1``; with ``prox`` as its proximal step after every Adam step, scaled by
  ``finetune_lr``; with ``v_groups`` also one group per entry of v), then per layer the
  weakest ``prune_fraction`` of the units (``v_prune_fraction`` of v's entries), and any
  below ``beta`` times the strongest, pruned, ``prune_steps`` more with them held at 0.
* ``ri``: R-I-DetNet: the first ``ri_layers`` layers (DetNet's loss trains every layer's
  estimate), ``ri_penalty_steps`` steps with the SGL penalty (0: none), per layer the weakest
  ``ri_prune_fraction`` of the units and ``v_prune_fraction`` of v's entries (by group norm)
  pruned, then ``ri_finetune_steps`` float steps at ``ri_finetune_lr`` at that depth with them
  held at 0.
* ``ri-dense``: the first ``ri_layers`` layers, fine-tuned the same way, not pruned.
* ``ri_start``: the R-I rows start from (and distil from) the dense float model (``dense``)
  or from the ``dense-ft`` row's fine-tuned one (``dense-ft``).

Then each: the hardware form with the kept units only (per-layer hidden widths, v's width), QAT for
``qat_steps`` (same recipe for all; ``freeze_mix``: the 0.1/0.9 mix layers stay DetNet's), the
integer model's BER at ``snr_db`` (same vectors for all; ``ber_ratio`` against the dense row)
and, with ``build = true``, a build through :func:`qphy.flow.build_and_verify` (FINN ->
Verilator verdict, ``vectors`` under backpressure, folding target ``target_cycles``): FINN's
estimated LUT/DSP/BRAM, cycles per frame and latency. Builds go to ``out_dir/builds/<key>``.
With ``dense_report`` (an earlier dense build's ``report.json``) the dense row is not built:
its hardware figures are that report's; ``build_only`` limits the builds to the rows named.

The defaults are the measured recipe of docs/detnet-iid.md ("Green DetNet on the i.i.d.
channel"): ``dense``, ``dense-ft`` and ``ri`` (6 layers, v 40 -> 12, no hidden units pruned,
6,000 distilled fine-tune steps at mix 0.25), QAT 800 steps with the mixes frozen.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from experiments import kit
from experiments.registry import experiment

NAME = "green-detnet-iid"
VARIANTS = ("dense", "dense-ft", "gl", "sgl", "ri", "ri-dense")
#: Settings only the compressed rows depend on.
GREEN_ONLY = {
    "variants",
    "penalty_steps",
    "prune_steps",
    "finetune_lr",
    "prox",
    "gl",
    "sgl_l1",
    "sgl_gl",
    "beta",
    "prune_fraction",
    "v_groups",
    "v_prune_fraction",
    "multiple_of",
    "ri_layers",
    "ri_penalty_steps",
    "ri_prune_fraction",
    "ri_finetune_steps",
    "ri_finetune_lr",
    "ri_mix",
    "ri_kd",
    "ri_start",
}
#: Settings only the R-I rows depend on.
RI_ONLY = {k for k in GREEN_ONLY if k.startswith("ri_")}


@dataclass(frozen=True)
class GreenIIDSettings:
    """One grid (every field can be overridden with ``--set``)."""

    float_checkpoint: str = ""
    layers: int = 10
    float_steps: int = 9000
    float_mix: float = 0.25
    bits: str = "w4a4"
    variants: tuple[str, ...] = ("dense", "dense-ft", "ri")
    penalty_steps: int = 800
    prune_steps: int = 600
    finetune_lr: float = 2e-4
    prox: bool = True
    gl: float = 2.0
    sgl_l1: float = 0.1
    sgl_gl: float = 1.5
    beta: float = 0.05
    prune_fraction: float = 0.5
    v_groups: bool = True
    v_prune_fraction: float = 0.7
    multiple_of: int = 4
    ri_layers: int = 6
    ri_penalty_steps: int = 0
    ri_prune_fraction: float = 0.0
    ri_finetune_steps: int = 6000
    ri_finetune_lr: float = 5e-4
    ri_mix: float = 0.25
    ri_kd: float = 1.0
    ri_start: str = "dense"
    qat_steps: int = 800
    qat_lr: float = 1e-4
    freeze_mix: bool = True
    fit_mix_bias: bool = True
    batch: int = 500
    snr_db: tuple[float, ...] = (12.0,)
    eval_vectors: int = 5000
    build: bool = False
    build_only: tuple[str, ...] = ()
    dense_report: str = ""
    target_cycles: int = 1000
    vectors: int = 300
    seed: int = 0


GRIDS = {
    "full": GreenIIDSettings(),
    "small": GreenIIDSettings(
        layers=3,
        float_steps=30,
        variants=("dense", "sgl", "ri"),
        penalty_steps=10,
        prune_steps=5,
        beta=0.9,
        ri_layers=2,
        ri_finetune_steps=5,
        qat_steps=5,
        batch=64,
        eval_vectors=100,
    ),
}


def _cfg(s: GreenIIDSettings, layers: int | None = None):
    from models.detector.config import QuantConfig  # noqa: PLC0415
    from qphy.variants import parse_bits  # noqa: PLC0415

    return QuantConfig(
        bits=parse_bits(s.bits),
        arch="detnet",
        channel="iid",
        layers=layers or s.layers,
        batch_size=s.batch,
        qat_steps=s.qat_steps,
        qat_lr=s.qat_lr,
        seed=s.seed,
        eval_snr_db=tuple(s.snr_db),
        eval_bits_per_snr=s.eval_vectors * 20,
    )


def _float(s: GreenIIDSettings):
    """The float DetNet every row starts from."""
    from models.detector.detnet import DetNetShape  # noqa: PLC0415
    from models.detector.detnet_train import (  # noqa: PLC0415
        DetNetTrainConfig,
        load_detnet,
        train_detnet,
    )
    from qphy.errors import ConfigError  # noqa: PLC0415

    if s.float_checkpoint:
        det, _ = load_detnet(Path(s.float_checkpoint))
        if det.shape.n_layers != s.layers:
            n = det.shape.n_layers
            raise ConfigError(f"{s.float_checkpoint} has {n} layers, not {s.layers}")
        return det
    shape = DetNetShape(n_layers=s.layers, mix=s.float_mix)
    cfg = DetNetTrainConfig(shape=shape, batch=s.batch, seed=s.seed)
    return train_detnet(cfg, steps=s.float_steps, description="float DetNet")[0]


def _variant(s: GreenIIDSettings, det, kind: str, teacher=None):
    """``(float model, unit keep-masks or None, v keep-mask or None)`` of a row (the float
    model trained in place; ``teacher``: the dense float model, for ``ri_kd``)."""
    from models.detector import green_iid  # noqa: PLC0415
    from models.detector.detnet_train import DetNetTrainConfig, train_detnet  # noqa: PLC0415

    ri = kind.startswith("ri")
    if ri:
        det = green_iid.truncate(det, s.ri_layers)
    if (ri or kind == "dense-ft") and s.ri_mix != det.shape.mix:
        det = green_iid.remix(det, s.ri_mix)
    lr = s.ri_finetune_lr if ri or kind == "dense-ft" else s.finetune_lr
    cfg = DetNetTrainConfig(shape=det.shape, batch=s.batch, lr=lr, seed=s.seed + 11)
    if kind == "dense":
        return det, None, None
    ri_ft = {"teacher": teacher, "kd": s.ri_kd, "description": kind}
    if kind == "dense-ft":
        green_iid.finetune(det, cfg, s.ri_finetune_steps, s.seed + 11, description=kind)
        return det, None, None
    if kind == "ri-dense":
        green_iid.finetune(det, cfg, s.ri_finetune_steps, s.seed + 11, **ri_ft)
        return det, None, None
    gl, l1 = (s.gl, 0.0) if kind == "gl" else (s.sgl_gl, s.sgl_l1)
    prox = lr if s.prox else 0.0
    penalty = green_iid.HiddenUnitLasso(gl, l1, prox_lr=prox, v_groups=s.v_groups)
    steps = s.ri_penalty_steps if ri else s.penalty_steps
    if steps:
        train_detnet(cfg, det, callbacks=[penalty], steps=steps, description=kind)
    fraction = s.ri_prune_fraction if ri else s.prune_fraction
    keep = green_iid.unit_masks(det, s.beta, s.multiple_of, fraction)
    v_keep = None
    if s.v_groups:
        v_keep = green_iid.v_mask(det, s.beta, s.multiple_of, s.v_prune_fraction)
    cb = (green_iid.ZeroUnits(keep, v_keep),)
    if ri:
        green_iid.finetune(det, cfg, s.ri_finetune_steps, s.seed + 11, callbacks=cb, **ri_ft)
    else:
        steps = s.prune_steps
        train_detnet(cfg, det, callbacks=cb, steps=steps, seed=s.seed + 12, description=kind)
    return det, keep, v_keep


def ber(cfg, model: torch.nn.Module, seed: int = 1234) -> tuple[list[float], list[int]]:
    """BER and errors per SNR of ``model`` (host inputs -> x) on the seeded i.i.d. vectors
    :func:`models.detector.detnet_iid.evaluate_ber` draws (same vectors for every row)."""
    from models.detector.data import detection_config  # noqa: PLC0415
    from models.detector.detnet_iid_hw import host_inputs  # noqa: PLC0415
    from models.detector.mimo import sample_numpy  # noqa: PLC0415

    det = detection_config(cfg)
    n_vec = max(1, -(-cfg.eval_bits_per_snr // det.k_tx))
    errors = []
    model.eval()
    for si, snr in enumerate(cfg.eval_snr_db):
        y, x, h, _ = sample_numpy(det, n_vec, snr, np.random.default_rng([seed, si]))
        with torch.no_grad():
            out = model(torch.from_numpy(host_inputs(y, h))).numpy()
        errors.append(int(np.sum(np.where(out >= 0, 1.0, -1.0) != x)))
    bits = n_vec * det.k_tx
    return [e / bits for e in errors], errors


def build(cfg, model, out_dir: Path, variant: str, s: GreenIIDSettings) -> dict:
    """export -> FINN -> Verilator verdict of a (pruned) hardware form; the report's figures."""
    from experiments.hardware import hardware_row  # noqa: PLC0415
    from hw.config import HwBuildConfig  # noqa: PLC0415
    from models.detector.detnet_iid import golden_inputs  # noqa: PLC0415
    from qphy.contracts import HostExtras  # noqa: PLC0415
    from qphy.flow import build_and_verify  # noqa: PLC0415
    from quant.export import export_verified  # noqa: PLC0415
    from sim.config import SimConfig  # noqa: PLC0415

    def export(d: Path) -> None:
        x = np.ascontiguousarray(golden_inputs(cfg, model, s.vectors), dtype=np.float32)
        meta = {"variant": variant, "target": "detector"}
        export_verified(model, x, d, meta, HostExtras(decision="sign"))

    extras = {
        "hidden_widths": list(model.hidden),
        "v_dim": model.v_dim,
        "layers_built": model.shape.n_layers,
    }
    report = build_and_verify(
        export,
        out_dir,
        HwBuildConfig(target_cycles=s.target_cycles),
        SimConfig(n_vectors=s.vectors, seed=7),
        extras,
    )
    return hardware_row(report)


@experiment(NAME, "Green DetNet (GL/SGL/R-I) on the i.i.d. channel, pruned and built vs dense")
def run(out_dir: Path, grid: str, overrides: dict) -> dict:
    from models.detector import green_iid  # noqa: PLC0415
    from models.detector.detnet_iid import _FloatDetector  # noqa: PLC0415
    from qphy.errors import ConfigError  # noqa: PLC0415
    from quant.recipes import Recipe  # noqa: PLC0415

    s = kit.settings(GreenIIDSettings, GRIDS, grid, overrides)
    if s.ri_start not in ("dense", "dense-ft"):
        raise ConfigError(f"ri_start must be 'dense' or 'dense-ft', got {s.ri_start!r}")
    unknown = sorted((set(s.variants) | set(s.build_only)) - set(VARIANTS))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    torch.set_num_threads(1)
    console = Console()
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
    start = {}

    def built(kind: str) -> bool:
        """Whether ``kind``'s row is built: ``build``, among ``build_only`` (empty: every
        row), and not the dense row when ``dense_report`` gives its hardware."""
        if kind == "dense" and s.dense_report:
            return False
        return s.build and (not s.build_only or kind in s.build_only)

    def point(kind: str):
        def compute() -> dict:
            if "det" not in start:
                start["det"] = _float(s)
            det0 = start["det"]
            if kind.startswith("ri") and s.ri_start == "dense-ft":
                det0 = _variant(s, copy.deepcopy(det0), "dense-ft")[0]
            det, keep, v_keep = _variant(s, copy.deepcopy(det0), kind, det0)
            cfg = _cfg(s, det.shape.n_layers)
            model = green_iid.to_quant(det, Recipe(cfg.bits), keep, v_keep)
            if s.fit_mix_bias:
                green_iid.symmetric_mix_bias(model, det.shape.mix)
            fit = green_iid.qat(
                model, cfg, s.qat_steps, s.qat_lr, s.seed + 13, freeze_mix=s.freeze_mix
            )
            float_ber, _ = ber(cfg, _FloatDetector(det))
            q_ber, q_err = ber(cfg, model)
            row = {
                "layers": det.shape.n_layers,
                "mix": det.shape.mix,
                "hidden_widths": list(model.hidden),
                "v_dim": model.v_dim,
                "float_ber": float_ber,
                "ber": q_ber,
                "errors": q_err,
                "bits": -(-cfg.eval_bits_per_snr // det.shape.k_tx) * det.shape.k_tx,
                "qat_loss": fit.mean_recent_loss,
            }
            if built(kind):
                variant = f"detnet_iid_green_{kind}"
                row.update(build(cfg, model, out_dir / "builds" / kind, variant, s))
            return row

        return compute

    # a row's cache key holds only what it depends on: adding a variant or retuning the
    # penalties leaves the dense row (and its build) cached
    skip = GREEN_ONLY | {"dense_report", "build_only"}  # the dense row's build: built("dense")
    common = {k: v for k, v in settings.items() if k not in skip}
    common["build"] = built("dense")
    row = {k: v for k, v in settings.items() if k not in ("variants", "dense_report")}
    pruned = {k: v for k, v in row.items() if k not in RI_ONLY}

    def key(kind: str) -> dict:
        if kind == "dense":
            return common
        return row if kind.startswith("ri") or kind == "dense-ft" else pruned

    points = [(kind, {**key(kind), "variant": kind}, point(kind)) for kind in s.variants]
    rows, computed = kit.run(NAME, out_dir, points, console)
    i12 = int(np.argmin([abs(x - 12.0) for x in s.snr_db]))
    dense = next((r for r in rows if r["key"] == "dense"), None)
    dense_ft = next((r for r in rows if r["key"] == "dense-ft"), None)
    if dense is not None and "LUT" not in dense and s.dense_report:
        dense.update(_reference(Path(s.dense_report)))
    for r in rows:
        r["ber_at_12db"] = r["ber"][i12]
        r["float_ber_at_12db"] = r["float_ber"][i12]
    for r in rows:
        if "LUT" in r:
            r["lut_dsp"] = r["LUT"] + r["DSP"]
        if dense is not None:
            r["ber_ratio"] = r["ber_at_12db"] / max(dense["ber_at_12db"], 1e-12)
        if dense_ft is not None:
            r["ber_ratio_dense_ft"] = r["ber_at_12db"] / max(dense_ft["ber_at_12db"], 1e-12)
        if dense is not None and "lut_dsp" in r and "lut_dsp" in dense:
            r["lut_dsp_reduction"] = 1.0 - r["lut_dsp"] / dense["lut_dsp"]
            # with the fair control present (the dense model given R-I's fine-tune), the BER
            # half must hold against it too
            fair = r.get("ber_ratio_dense_ft", 0.0) <= 1.2
            r["target_met"] = r["lut_dsp_reduction"] >= 0.5 and r["ber_ratio"] <= 1.2 and fair
    summary = {"experiment": NAME, "grid": grid, "settings": settings, "rows": rows}
    summary["computed_this_run"] = computed
    header, cells = kit.table(rows, _columns(s))
    kit.print_table(console, f"{NAME} ({grid} grid)", header, cells)
    md = (
        f"# {NAME} ({grid} grid)\n\n{s.bits}, QAT {s.qat_steps} steps per row (mixes "
        f"{'frozen' if s.freeze_mix else 'trained'}), BER of the integer model on "
        f"{s.eval_vectors} vectors (fresh i.i.d. channel each); LUT/DSP/BRAM "
        f"are FINN's estimates at folding target {s.target_cycles} cycles.\n\n"
        + kit.md_table(header, cells)
    )
    kit.write(out_dir, NAME, summary, md)
    return summary


def _reference(path: Path) -> dict:
    """The hardware figures of an earlier dense build (its report.json) for the dense row."""
    import json  # noqa: PLC0415

    from experiments.hardware import hardware_row  # noqa: PLC0415
    from qphy.errors import ConfigError  # noqa: PLC0415

    try:
        hw = hardware_row(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"dense_report {path}: not a build report ({exc})") from exc
    return {**{k: v for k, v in hw.items() if k != "variant"}, "hardware_from": str(path)}


def _columns(s: GreenIIDSettings) -> list:
    i12 = int(np.argmin([abs(x - 12.0) for x in s.snr_db]))

    def opt(key: str, fmt=str):
        return lambda r: fmt(r[key]) if key in r else "-"

    return [
        ("variant", lambda r: r["key"]),
        ("layers", lambda r: str(r["layers"])),
        ("mix", opt("mix")),
        ("hidden", lambda r: ",".join(str(h) for h in r["hidden_widths"])),
        ("v", lambda r: str(r["v_dim"])),
        ("LUT", opt("LUT")),
        ("DSP", opt("DSP")),
        ("BRAM18", opt("BRAM_18K")),
        ("LUT+DSP red.", opt("lut_dsp_reduction", lambda v: f"{100 * v:.1f} %")),
        ("cycles/frame", opt("cycles_per_frame")),
        ("latency us", opt("latency_us", lambda v: f"{v:.1f}")),
        ("bit-exact", opt("bit_exact", kit.yes_no)),
        ("float BER@12", lambda r: f"{r['float_ber_at_12db']:.2e}"),
        ("BER@12 (int)", lambda r: f"{r['ber_at_12db']:.2e}"),
        ("errors/bits", lambda r: f"{r['errors'][i12]}/{r['bits']}" if "bits" in r else "-"),
        ("BER ratio", opt("ber_ratio", lambda v: f"{v:.2f}")),
        ("vs dense-ft", opt("ber_ratio_dense_ft", lambda v: f"{v:.2f}")),
    ]
