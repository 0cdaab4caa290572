"""The public kit every study is written on: settings, points, run, reference row, tables,
plots, write.

Contract: a study (one file in ``experiments/studies/``) reads its settings with
:func:`settings` (a grid preset plus checked ``--set`` overrides), lists its points as
``(key, settings, compute)`` and runs them with :func:`run` (cached per point, local or on Ray:
:mod:`experiments.sweep`), measures rows with :func:`measure`, and hands the result to
:func:`summary` and :func:`publish` (terminal table, ``<name>.json``, ``<name>.md``,
``<name>.png``). Nothing here is private to a study, and no study imports another's helpers.

FullyCon studies start from the SHIPPED float checkpoint (:func:`shipped_float`) and fine-tune
through the one trainer with compression passes (callbacks); their BER is measured on the fixed
30x20 BPSK channel on the same seeded vectors for every point (:data:`BER_SEED`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from experiments.sweep import run_points
from models.detector.config import QuantConfig
from models.detector.finetune import ber, finetune, no_ber_loss
from qphy.errors import ConfigError
from qphy.fsutil import atomic_write_json, atomic_write_text
from qphy.variants import Bits
from quant.compress.accounting import account

#: Seed of the fine-tuning data stream: the same for every grid point, so points differ only in
#: what is compressed.
FINETUNE_SEED = 1
#: Seed of the BER vectors (evaluate_ber's default: the same vectors as `qphy evaluate`).
BER_SEED = 1234
#: The channel and the starting model of the FullyCon studies (as their summaries state them).
FIXED_CHANNEL = "fixed Toeplitz-0.6 30x20 BPSK"
SHIPPED_FLOAT = "quant/checkpoints/fullycon_float_fixed.pt (shipped float)"

#: What the reference point of a FullyCon study is.
SHIPPED_POINT = "shipped float, no fine-tuning"

#: A grid point: its cache key, the settings that produced it, and the work.
Point = tuple[str, dict, Callable[[], dict]]


@dataclass(frozen=True, kw_only=True)
class BerGrid:
    """The settings every FullyCon study has besides its own (a study's grid subclasses it).

    Attributes:
        lr: Adam learning rate of the fine-tuning (1e-4, as in the paper) or training.
        batch_size: Vectors per step.
        eval_bits_per_snr: Bits simulated per SNR point (8..13 dB).
    """

    lr: float = 1e-4
    batch_size: int = 1000
    eval_bits_per_snr: int = 1_000_000


# ---- settings ------------------------------------------------------------------------------


def settings(cls: type, grids: dict[str, Any], grid: str, overrides: dict) -> Any:
    """The grid's preset of the settings dataclass ``cls`` with ``overrides`` applied, each
    checked against the field's type (an int where a float is expected is accepted).

    Raises:
        ConfigError: An unknown setting or a value of the wrong type.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
    base = grids[grid]
    checked = {}
    for key, value in overrides.items():
        default = getattr(base, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        ok = (
            isinstance(value, type(default))
            or (isinstance(default, float) and isinstance(value, int))
        ) and not (isinstance(value, bool) and not isinstance(default, bool))
        if not ok:
            raise ConfigError(
                f"setting {key}={value!r}: expected {type(default).__name__} like {default!r}"
            )
        checked[key] = float(value) if isinstance(default, float) else value
    return replace(base, **checked)


def eval_cfg(batch_size: int, bits_per_snr: int) -> QuantConfig:
    """The detector config a FullyCon study fine-tunes and measures with."""
    return QuantConfig(batch_size=batch_size, eval_bits_per_snr=bits_per_snr)


def shipped_float() -> torch.nn.Module:
    """The shipped float FullyCon (fixed channel)."""
    from models.detector.jobs import load_or_train  # noqa: PLC0415 - torch training code

    return load_or_train(QuantConfig())


class ShippedFloat:
    """The shipped float FullyCon, loaded on first use and kept (one load per process). It
    pickles empty, so points that use it can be sent to Ray workers, which load their own."""

    def __init__(self) -> None:
        self._model: torch.nn.Module | None = None

    def __call__(self) -> torch.nn.Module:
        if self._model is None:
            self._model = shipped_float()
        return self._model

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._model = None


def fullycon_setup(
    cls: type, grids: dict[str, Any], grid: str, overrides: dict
) -> tuple[Any, Console, QuantConfig, dict, Callable[[], torch.nn.Module]]:
    """What every FullyCon study starts from: its settings (grid + overrides), a console, the
    evaluation config, the settings every point shares (BER bits and SNRs) and a loader of the
    shipped float model (loaded once, on first use)."""
    s = settings(cls, grids, grid, overrides)
    cfg = eval_cfg(s.batch_size, s.eval_bits_per_snr)
    common = {"eval_bits_per_snr": s.eval_bits_per_snr, "snr_db": list(cfg.eval_snr_db)}
    return s, Console(), cfg, common, ShippedFloat()


def qat_start(float_model: torch.nn.Module, bits: Bits) -> torch.nn.Module:
    """A QAT FullyCon of ``bits`` (per-channel power-of-two weights, quant.recipes) of the float
    model's shape, initialised from it (seeded: the same start for every point)."""
    from models.detector.qat import QuantFullyCon  # noqa: PLC0415 - brevitas only when needed
    from quant.recipes import Recipe  # noqa: PLC0415

    torch.manual_seed(0)
    model = QuantFullyCon(Recipe(bits), float_model.shape)
    model.load_float(float_model)
    return model


def finetune_settings(common: dict, s: Any, **own: Any) -> dict:
    """A fine-tuned point's settings: the shared ones, its own, and the fine-tuning's
    (learning rate, batch, data seed), which decide whether a cached point still holds."""
    return {**common, **own, "lr": s.lr, "batch_size": s.batch_size, "finetune_seed": FINETUNE_SEED}


# ---- points and rows -----------------------------------------------------------------------


def run(
    name: str, out_dir: Path, points: Sequence[Point], console: Console
) -> tuple[list[dict], list[str]]:
    """Run (or read from the cache) every point: ``(rows, keys computed now)``."""
    return run_points(name, out_dir, list(points), console)


def sweep(
    common: dict,
    reference: Callable[[], dict],
    values: Sequence[Any],
    key: Callable[[Any], str],
    point_settings: Callable[[Any], dict],
    row: Callable[[Any, str], dict],
    *,
    reference_key: str = "float",
    reference_point: str = SHIPPED_POINT,
) -> list[Point]:
    """The points of a one-parameter study: the reference row first (``reference()``, the
    shipped model, under ``reference_key``), then ``row(value, key(value))`` for every value,
    cached under ``point_settings(value)``."""
    points: list[Point] = [(reference_key, {**common, "point": reference_point}, reference)]
    for value in values:
        k = key(value)
        points.append((k, point_settings(value), functools.partial(row, value, k)))
    return points


def finetuned(
    cfg: QuantConfig,
    s: Any,
    model: torch.nn.Module,
    key: str,
    *,
    steps: int,
    callbacks: Sequence[Any] = (),
    description: str | None = None,
) -> dict:
    """Fine-tune ``model`` in place (Adam at ``s.lr``, the shared data seed, the callbacks'
    passes) and measure it: ``{"final_train_loss", **measure(...)}``."""
    fit = finetune(
        model,
        cfg,
        steps=steps,
        lr=s.lr,
        callbacks=callbacks,
        seed=FINETUNE_SEED,
        description=description or key,
    )
    return {"final_train_loss": fit.mean_recent_loss, **measure(cfg, model, key)}


def measure(cfg: QuantConfig, model: torch.nn.Module, name: str, **ber_kwargs) -> dict:
    """What every detector row carries: the model's accounting and its BER per SNR (with its
    error counts, for the no-loss rule), on the studies' shared vectors; ``mmse_ber`` too when
    ``with_mmse=True``."""
    res = ber(cfg, {name: model}, seed=BER_SEED, **ber_kwargs)
    row = {
        "account": account(model).to_json(),
        "ber": res["ber"][name],
        "errors": res["errors"][name],
        "bits_per_snr": res["bits_simulated_per_snr"],
    }
    if "mmse" in res["ber"]:
        row["mmse_ber"] = res["ber"]["mmse"]
    return row


def mark_no_ber_loss(rows: list[dict]) -> dict:
    """Sets ``row["no_ber_loss"]`` on every row against the reference row (the first one):
    :func:`models.detector.finetune.no_ber_loss` on their error counts; returns the reference."""
    ref = rows[0]
    for row in rows:
        row["no_ber_loss"] = no_ber_loss(row["errors"], ref["errors"], ref["bits_per_snr"])
    return ref


def ber_curve(cfg: QuantConfig, model: torch.nn.Module, key: str) -> list[float]:
    """The model's BER per SNR alone (no accounting), on the studies' shared vectors."""
    return ber(cfg, {key: model}, seed=BER_SEED)["ber"][key]


def summary(
    name: str,
    grid: str,
    s: Any,
    snr_db: Sequence[float],
    rows: list[dict],
    computed: list[str],
    *,
    channel: str = FIXED_CHANNEL,
    start: str | None = SHIPPED_FLOAT,
    **facts: Any,
) -> dict:
    """The study's JSON summary: name, grid, settings, SNRs, channel, starting model, the
    study's own ``facts``, then the rows (the first one is the reference row) and the keys
    computed in this run."""
    out = {
        "experiment": name,
        "grid": grid,
        "settings": asdict(s),
        "snr_db": list(snr_db),
        "channel": channel,
    }
    if start is not None:
        out["start"] = start
    return {**out, **facts, "rows": rows, "computed": computed}


# ---- tables, plots, write ------------------------------------------------------------------


def ber_cells(row: dict) -> list[str]:
    """A row's BER per SNR as table cells."""
    return [f"{b:.2e}" for b in row["ber"]]


#: A table column: its header and the function that makes a row's cell.
Column = tuple[str, Callable[[dict], str]]


def table(rows: Sequence[dict], columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
    """``(header, cells)``: one cell per column for every row."""
    return [h for h, _ in columns], [[f(r) for _, f in columns] for r in rows]


def ber_table(
    rows: list[dict],
    snr_db: Sequence[float],
    columns: Sequence[Column],
    tail: Sequence[Column] = (),
) -> tuple[list[str], list[list[str]]]:
    """``(header, cells)`` of a BER table: the study's ``columns``, the BER per SNR, then the
    ``tail`` columns."""
    ber = [(f"BER {x:g} dB", lambda r, i=i: f"{r['ber'][i]:.2e}") for i, x in enumerate(snr_db)]
    return table(rows, [*columns, *ber, *tail])


def kbit(bits: int) -> str:
    """A memory cell: bits as kbit with one decimal."""
    return f"{bits / 1000:.1f}"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def print_table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table on the terminal."""
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(*r)
    # Wide enough for the BER columns even when stdout is not a terminal (80 columns).
    console.print(table, width=max(console.width, 170))


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """The same table in Markdown (right-aligned columns)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], snr_db: list[float], path: Path, title: str, label: str) -> None:
    """BER vs SNR (log scale), one curve per row, labelled by ``row[label]``."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for row in rows:
        vals = np.where(np.asarray(row["ber"]) > 0, row["ber"], np.nan)
        ax.semilogy(snr_db, vals, marker="o", label=row[label])
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("BER")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out_dir: Path, name: str, result: dict, markdown: str) -> None:
    """``<name>.json`` and ``<name>.md``, each written atomically."""
    atomic_write_json(out_dir / f"{name}.json", result)
    atomic_write_text(out_dir / f"{name}.md", markdown)


def publish(
    out_dir: Path,
    result: dict,
    table: tuple[list[str], list[list[str]]],
    console: Console,
    about: str,
    *,
    after: str = "",
    plot_title: str,
    plot_rows: list[dict] | None = None,
) -> dict:
    """The end of a one-table BER study: the ``(header, cells)`` table on the terminal,
    ``<name>.md`` (a title, ``about``, the table, ``after``), ``<name>.json`` and the BER plot
    ``<name>.png`` of ``plot_rows`` (default: the result's rows). Returns ``result``."""
    name, grid = result["experiment"], result["grid"]
    header, cells = table
    print_table(console, f"{name} ({grid})", header, cells)
    md = f"# {name} ({grid} grid)\n\n{about}\n\n" + md_table(header, cells) + after
    write(out_dir, name, result, md)
    rows = result["rows"] if plot_rows is None else plot_rows
    plot(rows, result["snr_db"], out_dir / f"{name}.png", plot_title, "key")
    return result


# ---- one run of a FullyCon study -----------------------------------------------------------


@dataclass
class Study:
    """One run of a FullyCon study: its name, grid and output folder, its settings ``s``, the
    evaluation config, the settings every point shares and the shipped float model's loader
    (see :func:`fullycon_study`). Its methods are the kit's functions with these filled in."""

    name: str
    grid: str
    out_dir: Path
    s: Any
    console: Console
    cfg: QuantConfig
    common: dict
    load: Callable[[], torch.nn.Module]

    def __getstate__(self) -> dict:
        # A point's work may hold the study; the console (a terminal) stays with the driver.
        return {**self.__dict__, "console": None}

    def point_settings(self, **own: Any) -> dict:
        """A fine-tuned point's settings (:func:`finetune_settings`)."""
        return finetune_settings(self.common, self.s, **own)

    def sweep(
        self,
        reference: Callable[[], dict],
        values: Sequence[Any],
        key: Callable[[Any], str],
        own: Callable[[Any], dict],
        row: Callable[[Any, str], dict],
        **kwargs: Any,
    ) -> list[Point]:
        """:func:`sweep`; ``own(value)`` is the point's own settings (the fine-tuning's are
        added)."""
        return sweep(
            self.common,
            reference,
            values,
            key,
            lambda v: self.point_settings(**own(v)),
            row,
            **kwargs,
        )

    def run(self, points: Sequence[Point]) -> tuple[list[dict], list[str]]:
        return run(self.name, self.out_dir, points, self.console)

    def measure(self, model: torch.nn.Module, key: str, **ber_kwargs: Any) -> dict:
        return measure(self.cfg, model, key, **ber_kwargs)

    def finetuned(self, model: torch.nn.Module, key: str, **kwargs: Any) -> dict:
        return finetuned(self.cfg, self.s, model, key, **kwargs)

    def summary(self, rows: list[dict], computed: list[str], **facts: Any) -> dict:
        return summary(self.name, self.grid, self.s, self.cfg.eval_snr_db, rows, computed, **facts)

    def publish(
        self, result: dict, table: tuple[list[str], list[list[str]]], about: str, **kwargs: Any
    ) -> dict:
        return publish(self.out_dir, result, table, self.console, about, **kwargs)


def fullycon_study(
    name: str, cls: type, grids: dict[str, Any], out_dir: Path, grid: str, overrides: dict
) -> Study:
    """The :class:`Study` of one run of the FullyCon study ``name`` (:func:`fullycon_setup`)."""
    s, console, cfg, common, load = fullycon_setup(cls, grids, grid, overrides)
    return Study(name, grid, Path(out_dir), s, console, cfg, common, load)
