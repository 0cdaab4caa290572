"""``qphy experiment green-detnet``: the Green DetNet paper's Table II, its BER-vs-SNR curves and
the incremental-depth table, re-run on qphy's DetNet (30 x 20 i.i.d. BPSK).

Rows (each one resumable grid point, trained through the one trainer):

* ``detnet``: DetNet of ``n_layers`` layers, ``steps`` steps.
* ``pruned-detnet``: ``detnet`` pruned at ``alpha * max|w|`` per layer, fine-tuned.
* ``r-detnet``: trained with L1 (``l1``), pruned at ``alpha``, fine-tuned.
* ``r-detnet-gl``: group lasso (``gl``), columns pruned at ``beta`` and weights at ``alpha``.
* ``r-detnet-sgl``: sparse group lasso (``sgl_l1``, ``sgl_gl``), pruned like GL.
* ``r-i-detnet``: incremental training with L1 (stopping rule ``rel_tol``), pruned at alpha.
* ``r-i-detnet-sgl``: incremental training with SGL, pruned like GL.

Memory (MB of the non-zero weights at 32 bit) and FLOPs per vector follow the paper's
accounting (:func:`models.detector.detnet_cost.detnet_account`); reductions are against ``detnet``.
``depth`` is the incremental-depth table: the regularised incremental run grown to
``max_layers`` without its stopping rule, with the validation loss and BER at 12 dB after each
stage, and the depth the rule (gain < ``rel_tol``) would have stopped at.

Scale: the paper's DetNet has 3K = 60..90 layers trained for tens of thousands of steps on a
GPU; the ``full`` grid here is 10 layers (incremental up to 20), sized for a 2-core CPU in
about an hour; ``--set n_layers=30 --set max_layers=90`` reproduces the paper's depths on a
bigger machine. ``small`` is the CI grid (3 layers, tens of steps: it checks the machinery,
not the figures).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console

from experiments import kit
from experiments.registry import experiment
from models.detector.detnet import DetNet, DetNetShape
from models.detector.detnet_cost import detnet_account
from models.detector.detnet_train import (
    DetNetTrainConfig,
    evaluate_detnet_ber,
    gain_negligible,
    incremental_train,
    train_detnet,
)
from models.detector.green import (
    ColumnGroupLasso,
    SparseGroupLasso,
    column_masks,
    l1_penalty,
    threshold_masks,
)
from models.detector.mimo import ChannelKind, DetectionConfig
from quant.compress.masks import MaskCallback, combine, sparsity

log = logging.getLogger(__name__)

NAME = "green-detnet"
#: The SNR (dB) of Table II's BER column.
TABLE_SNR_DB = 12.0


@dataclass(frozen=True)
class GreenSettings:
    """One grid of the experiment (every field can be overridden with ``--set``)."""

    n_layers: int = 10
    steps: int = 4000
    batch: int = 500
    lr: float = 1e-3
    finetune_steps: int = 800
    finetune_lr: float = 1e-4
    alpha: float = 0.15
    beta: float = 0.3
    l1: float = 1e-4
    gl: float = 1e-3
    sgl_l1: float = 5e-5
    sgl_gl: float = 5e-4
    start_layers: int = 2
    add_layers: int = 2
    max_layers: int = 20
    steps_per_stage: int = 800
    rel_tol: float = 0.01
    snr_db: tuple[float, ...] = tuple(float(s) for s in range(16))
    eval_vectors: int = 10_000
    n_rx: int = 30
    k_tx: int = 20
    seed: int = 0


GRIDS = {
    "full": GreenSettings(),
    "small": GreenSettings(
        n_layers=3,
        steps=40,
        batch=64,
        finetune_steps=10,
        start_layers=2,
        add_layers=1,
        max_layers=3,
        steps_per_stage=15,
        snr_db=(0.0, 6.0, 12.0, 15.0),
        eval_vectors=300,
    ),
}


def _train_cfg(s: GreenSettings, layers: int | None = None) -> DetNetTrainConfig:
    det = DetectionConfig(n_rx=s.n_rx, k_tx=s.k_tx, channel=ChannelKind.IID_GAUSSIAN)
    shape = DetNetShape(n_rx=s.n_rx, k_tx=s.k_tx, n_layers=layers or s.n_layers)
    return DetNetTrainConfig(
        detection=det, shape=shape, steps=s.steps, batch=s.batch, lr=s.lr, seed=s.seed
    )


def _finetune(model: DetNet, s: GreenSettings, masks, what: str) -> DetNet:
    cfg = replace(_train_cfg(s, model.active_layers), lr=s.finetune_lr)
    log.info("%s: %.1f %% of the weights pruned", what, 100 * sparsity(masks))
    train_detnet(
        cfg,
        model,
        callbacks=[MaskCallback(masks)],
        steps=s.finetune_steps,
        seed=s.seed + 1,
        description=f"{what} fine-tune",
    )
    return model


def _ber(model: DetNet, s: GreenSettings, snr_db) -> dict:
    """BER of ``model`` at ``snr_db`` on the experiment's vectors (no baselines)."""
    det = _train_cfg(s).detection
    return evaluate_detnet_ber(det, {"m": model}, snr_db, s.eval_vectors, baselines=())


def _row(model: DetNet, s: GreenSettings) -> dict:
    res = _ber(model, s, s.snr_db)
    return {
        "layers": model.active_layers,
        "account": detnet_account(model),
        "ber": res["ber"]["m"],
        "errors": res["errors"]["m"],
        "bits_per_snr": res["bits_simulated_per_snr"],
    }


def _incremental(s: GreenSettings, callback, rel_tol: float, on_stage=None):
    """:func:`models.detector.detnet_train.incremental_train` with the grid's stages and one
    regulariser."""
    return incremental_train(
        _train_cfg(s),
        max_layers=s.max_layers,
        start_layers=s.start_layers,
        add_layers=s.add_layers,
        steps_per_stage=s.steps_per_stage,
        rel_tol=rel_tol,
        callbacks=[callback],
        on_stage=on_stage,
    )


def _prune(model: DetNet, s: GreenSettings, columns: bool):
    masks = threshold_masks(model, s.alpha)
    if columns:
        masks = combine(masks, column_masks(model, s.beta))
    return masks


@experiment(NAME, "Green DetNet: Table II, BER vs SNR, incremental depth (i.i.d. 30x20 BPSK)")
def run(out_dir: Path, grid: str, overrides: dict) -> dict:
    s = kit.settings(GreenSettings, GRIDS, grid, overrides)
    console = Console()
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
    cache: dict[str, DetNet] = {}

    def baseline() -> DetNet:
        if "detnet" not in cache:
            cache["detnet"], _ = train_detnet(_train_cfg(s), description="DetNet")
        return cache["detnet"]

    def pruned() -> dict:
        model = copy.deepcopy(baseline())
        return _row(_finetune(model, s, _prune(model, s, False), "pruned-detnet"), s)

    def regularised(callback, columns: bool, name: str):
        def compute() -> dict:
            model, _ = train_detnet(_train_cfg(s), callbacks=[callback], description=name)
            return _row(_finetune(model, s, _prune(model, s, columns), name), s)

        return compute

    def incremental(callback, columns: bool, name: str):
        def compute() -> dict:
            model, stages = _incremental(s, callback, s.rel_tol)
            row = _row(_finetune(model, s, _prune(model, s, columns), name), s)
            row["stages"] = [asdict(st) for st in stages]
            return row

        return compute

    def depth_table() -> dict:
        rows = []

        def on_stage(model: DetNet, stage) -> None:
            rows.append(
                {
                    "layers": stage.layers,
                    "val_loss": stage.val_loss,
                    f"ber_{TABLE_SNR_DB:g}db": _ber(model, s, [TABLE_SNR_DB])["ber"]["m"][0],
                    "memory_mb": detnet_account(model)["memory_mb"],
                }
            )

        _incremental(s, l1_penalty(s.l1), 0.0, on_stage)
        stop = rows[-1]["layers"]
        for prev, cur in zip(rows, rows[1:], strict=False):
            if gain_negligible(prev["val_loss"], cur["val_loss"], s.rel_tol):
                stop = prev["layers"]
                break
        return {"depths": rows, "stopping_rule_layers": stop}

    points = [
        ("detnet", settings, lambda: _row(baseline(), s)),
        ("pruned-detnet", settings, pruned),
        ("r-detnet", settings, regularised(l1_penalty(s.l1), False, "r-detnet")),
        ("r-detnet-gl", settings, regularised(ColumnGroupLasso(s.gl), True, "r-detnet-gl")),
        (
            "r-detnet-sgl",
            settings,
            regularised(SparseGroupLasso(s.sgl_l1, s.sgl_gl), True, "r-detnet-sgl"),
        ),
        ("r-i-detnet", settings, incremental(l1_penalty(s.l1), False, "r-i-detnet")),
        (
            "r-i-detnet-sgl",
            settings,
            incremental(SparseGroupLasso(s.sgl_l1, s.sgl_gl), True, "r-i-detnet-sgl"),
        ),
    ]
    rows, computed = kit.run(NAME, out_dir, points, console)
    depth_rows, more = kit.run(NAME, out_dir, [("depth", settings, depth_table)], console)
    computed += more
    depth = depth_rows[0]
    base = rows[0]["account"]
    i12 = min(range(len(s.snr_db)), key=lambda i: abs(s.snr_db[i] - TABLE_SNR_DB))
    for row in rows:
        acc = row["account"]
        row["memory_reduction"] = 1.0 - acc["memory_mb"] / base["memory_mb"]
        row["flops_reduction"] = 1.0 - acc["flops"]["total"] / base["flops"]["total"]
        row["ber_at_12db"] = row["ber"][i12]
    summary = {
        "experiment": NAME,
        "grid": grid,
        "settings": settings,
        "snr_db": list(s.snr_db),
        "table_snr_db": s.snr_db[i12],
        "rows": rows,
        "depth": depth,
        "computed_this_run": computed,
    }
    header, cells = kit.table(
        rows,
        [
            ("model", lambda r: r["key"]),
            ("layers", lambda r: str(r["layers"])),
            ("memory MB", lambda r: f"{r['account']['memory_mb']:.4f}"),
            ("mem. red.", lambda r: f"{100 * r['memory_reduction']:.1f} %"),
            ("FLOPs", lambda r: f"{r['account']['flops']['total']:,}"),
            ("FLOPs red.", lambda r: f"{100 * r['flops_reduction']:.1f} %"),
            ("BER@12dB", lambda r: f"{r['ber_at_12db']:.2e}"),
        ],
    )
    dheader, dcells = kit.table(
        depth["depths"],
        [
            ("layers", lambda d: str(d["layers"])),
            ("val. loss", lambda d: f"{d['val_loss']:.4f}"),
            (f"BER@{TABLE_SNR_DB:g}dB", lambda d: f"{d[f'ber_{TABLE_SNR_DB:g}db']:.2e}"),
            ("memory MB", lambda d: f"{d['memory_mb']:.4f}"),
        ],
    )
    kit.print_table(console, f"Green DetNet, Table II ({grid} grid)", header, cells)
    kit.print_table(console, "Incremental depth (L1, no stopping rule)", dheader, dcells)
    md = (
        f"# Green DetNet ({grid} grid)\n\ni.i.d. {s.n_rx}x{s.k_tx} BPSK, "
        f"{rows[0]['bits_per_snr']} bits per SNR; reductions against `detnet`.\n\n"
        + kit.md_table(header, cells)
        + f"\n## Incremental depth\n\nThe stopping rule (gain < {s.rel_tol:g}) stops at "
        f"{depth['stopping_rule_layers']} layers.\n\n" + kit.md_table(dheader, dcells)
    )
    kit.write(out_dir, NAME, summary, md)
    kit.plot(rows, list(s.snr_db), out_dir / f"{NAME}.png", "Green DetNet, i.i.d. 30x20", "key")
    return summary
