"""From a built hw directory to a Vivado flow, and (with Vivado) to reports and a bitstream.

Contract:

* input: a hw build directory (``DIR/hw`` or ``DIR``) holding ``rtl/src`` (the layers and the
  stitched top), ``rtl/mem``, ``rtl/manifest.json`` and optionally ``hw_report.json``;
* output: a self-contained directory (the RTL copied in, so it can be mounted into the Docker
  image alone) with the TCL flows of :mod:`bitstreams.tcl`, the Verilog shell of
  :mod:`bitstreams.wrapper` and ``bitstream_manifest.json``; after a Vivado run also
  ``reports/*.rpt``, ``vivado_<mode>.log`` and, in ``bitstream`` mode,
  ``<variant>_<board>.bit/.hwh/.xsa``.

Every function writes its output directory as a whole (built in a hidden sibling, renamed when
complete): a failure, including a missing Vivado, leaves nothing behind. Vivado is looked up
before anything is written.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

from bitstreams.boards import Board, Recipe, make_recipe
from bitstreams.boards import board as lookup_board
from bitstreams.reports import parse_reports
from bitstreams.tcl import BITSTREAM_TCL, COMMON_TCL, OOC_TCL, ooc_xdc, settings_tcl
from bitstreams.wrapper import WRAPPER_MODULE, wrapper_verilog
from hw.stitch import source_order
from hw.toolchain import require_vivado, tool_versions
from qphy.contracts import Manifest
from qphy.errors import ConfigError, PipelineError
from qphy.fsutil import StagedDir, atomic_write_json, atomic_write_text, sha256

log = logging.getLogger(__name__)

#: Vivado flows: mode -> script.
MODES = {"ooc": "ooc.tcl", "bitstream": "bitstream.tcl"}
#: Report file prefix per mode (reports/<prefix>utilization.rpt, ...).
REPORT_PREFIX = {"ooc": "ooc_", "bitstream": ""}
MANIFEST_FILE = "bitstream_manifest.json"
MANIFEST_VERSION = 1


class VivadoError(PipelineError):
    """Vivado ran and failed; the message carries its first ERROR lines and where its log is."""


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown Vivado mode '{mode}'; choose one of {', '.join(MODES)}")
    return mode


def _board(board: str | Board) -> Board:
    return board if isinstance(board, Board) else lookup_board(board)


def resolve_hw_dir(path: Path) -> Path:
    """The hw directory for ``path``: ``path`` itself or ``path/hw`` (a ``qphy build`` out dir).

    Raises:
        ConfigError: neither holds ``rtl/manifest.json``.
    """
    path = Path(path)
    for cand in (path, path / "hw"):
        if (cand / "rtl" / Manifest.FILE).is_file():
            return cand
    raise ConfigError(
        f"{path} is not a hw build directory (no rtl/{Manifest.FILE} in it or in {path}/hw); "
        "run `qphy build` first"
    )


def _hashes(root: Path, files: list[Path]) -> dict[str, str]:
    return {str(f.relative_to(root)): sha256(f) for f in sorted(files)}


def _recipe_json(recipe: Recipe) -> dict:
    d = dataclasses.asdict(recipe)
    d["part"] = recipe.part
    d["dma_cycles_per_frame"] = recipe.dma_cycles_per_frame
    d["dma_limited"] = recipe.dma_limited
    return d


def _qphy_version() -> str:
    try:
        return importlib.metadata.version("qphy")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write_flow(
    hw_dir: Path,
    board: Board,
    dest: Path,
    saif: Path | None,
    saif_strip_path: str | None,
) -> list[Path]:
    """Write the whole flow for ``hw_dir`` on ``board`` into ``dest``; return the files."""
    hw = resolve_hw_dir(hw_dir)
    rtl = hw / "rtl"
    manifest = Manifest.read(rtl / Manifest.FILE)
    variant = hw.parent.name if hw.name == "hw" else hw.name
    recipe = make_recipe(manifest, board, variant)
    src_dir, mem_dir = rtl / "src", rtl / "mem"
    if not (src_dir / f"{manifest.top}.sv").is_file():
        raise PipelineError(f"{src_dir} has no stitched top {manifest.top}.sv; re-run the hw stage")
    if manifest.top == WRAPPER_MODULE:
        raise PipelineError(f"the stitched top may not be called {WRAPPER_MODULE}")
    ordered = source_order(src_dir, manifest.top)
    src_files = sorted(p for p in src_dir.iterdir() if p.is_file())
    mem_files = sorted(p for p in mem_dir.iterdir() if p.is_file()) if mem_dir.is_dir() else []
    inputs = [*src_files, *mem_files, rtl / Manifest.FILE]
    if (hw / "hw_report.json").is_file():
        inputs.append(hw / "hw_report.json")

    (dest / "rtl" / "src").mkdir(parents=True)
    (dest / "rtl" / "mem").mkdir()
    (dest / "constraints").mkdir()
    for f in src_files:
        shutil.copy2(f, dest / "rtl" / "src" / f.name)
    for f in mem_files:
        shutil.copy2(f, dest / "rtl" / "mem" / f.name)
    shutil.copy2(rtl / Manifest.FILE, dest / "rtl" / Manifest.FILE)

    saif_rel = None
    if saif is not None:
        saif = Path(saif)
        if not saif.is_file():
            raise ConfigError(f"SAIF file {saif} does not exist")
        (dest / "activity").mkdir()
        shutil.copy2(saif, dest / "activity" / saif.name)
        saif_rel = f"activity/{saif.name}"
        inputs.append(saif)

    artifact = f"{variant}_{board.name}"
    texts = {
        f"rtl/{WRAPPER_MODULE}.v": wrapper_verilog(recipe, manifest.top),
        "settings.tcl": settings_tcl(
            recipe,
            manifest.top,
            [f"rtl/src/{p.name}" for p in ordered],
            saif_rel,
            saif_strip_path,
            artifact,
        ),
        "common.tcl": COMMON_TCL,
        "ooc.tcl": OOC_TCL,
        "bitstream.tcl": BITSTREAM_TCL,
        "constraints/ooc.xdc": ooc_xdc(recipe),
    }
    for rel, text in texts.items():
        (dest / rel).write_text(text)

    generated = sorted(p for p in dest.rglob("*") if p.is_file())
    record = {
        "version": MANIFEST_VERSION,
        "variant": variant,
        "artifact": artifact,
        "hw_dir": str(hw.resolve()),
        "fpga_part_of_design": manifest.fpga_part,
        "recipe": _recipe_json(recipe),
        "generated_by": {"qphy": _qphy_version(), **tool_versions()},
        "inputs_sha256": {
            str(p.relative_to(hw) if p.is_relative_to(hw) else p.resolve()): sha256(p)
            for p in inputs
        },
        "flow_sha256": _hashes(dest, generated),
        "runs": {},
    }
    atomic_write_json(dest / MANIFEST_FILE, record)
    return [*generated, dest / MANIFEST_FILE]


def generate(
    hw_dir: Path,
    board: str | Board,
    out_dir: Path,
    *,
    saif: Path | None = None,
    saif_strip_path: str | None = None,
) -> list[Path]:
    """Write the Vivado flow for a built design on ``board`` into ``out_dir`` (no Vivado needed).

    Args:
        hw_dir: The hw build directory (``DIR/hw``) or the ``qphy build`` out dir above it.
        board: A board name of :data:`bitstreams.boards.BOARDS` or a :class:`Board`.
        out_dir: Replaced as a whole when generation succeeds.
        saif: Optional switching activity (SAIF) for report_power; copied into the flow.
        saif_strip_path: The accelerator's instance path inside the SAIF (``read_saif
            -strip_path``), e.g. the bench's DUT instance.

    Returns:
        The generated files, at their final paths.
    """
    b = _board(board)
    with StagedDir(out_dir, "vivado", inputs=(Path(hw_dir),)) as staged:
        files = _write_flow(Path(hw_dir), b, staged.path, saif, saif_strip_path)
        rel = [f.relative_to(staged.path) for f in files]
        final = staged.publish()
    return [final / r for r in rel]


def _error_lines(log_file: Path, limit: int = 20) -> list[str]:
    if not log_file.is_file():
        return []
    lines = log_file.read_text(errors="replace").splitlines()
    return [ln for ln in lines if ln.startswith(("ERROR:", "CRITICAL WARNING:"))][:limit]


def vivado_version(log_text: str) -> str:
    """Vivado's version from the banner of its log (``Vivado v2024.2 (64-bit)``)."""
    m = re.search(r"Vivado v(\d{4}\.\d+(?:\.\d+)?)", log_text)
    return m.group(1) if m else "unknown"


def _run_in(
    flow_dir: Path,
    mode: str,
    vivado: Path,
    jobs: int,
    timeout_s: float | None,
    failure_log: Path,
) -> dict:
    """Run one flow in ``flow_dir`` (a staged directory), parse, record in the manifest."""
    record = json.loads((flow_dir / MANIFEST_FILE).read_text())
    period_ns = 1000.0 / float(record["recipe"]["clock_mhz"])
    log_file = flow_dir / f"vivado_{mode}.log"
    cmd = [
        str(vivado),
        "-mode",
        "batch",
        "-nojournal",
        "-notrace",
        "-log",
        str(log_file),
        "-source",
        str(flow_dir / MODES[mode]),
        "-tclargs",
        str(jobs),
    ]
    log.info("running Vivado (%s) in %s", mode, flow_dir)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=flow_dir, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        failed = proc.returncode != 0
        why = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        failed, why = True, f"timed out after {timeout_s} s"
    wall_s = time.monotonic() - start
    if failed:
        if log_file.is_file():
            atomic_write_text(failure_log, log_file.read_text(errors="replace"))
        errors = "; ".join(_error_lines(log_file)) or "no ERROR line in the log"
        raise VivadoError(f"Vivado {mode} flow failed ({why}): {errors} (log: {failure_log})")

    reports = parse_reports(flow_dir / "reports", REPORT_PREFIX[mode], period_ns)
    outputs: list[Path] = []
    if mode == "bitstream":
        outputs = [flow_dir / f"{record['artifact']}{ext}" for ext in (".bit", ".hwh", ".xsa")]
        absent = [p.name for p in outputs if not p.is_file()]
        if absent:
            raise VivadoError(f"Vivado finished but wrote no {absent} (log: {log_file.name})")
    outputs += sorted((flow_dir / "reports").glob(f"{REPORT_PREFIX[mode]}*.rpt"))
    run = {
        "vivado": vivado_version(log_file.read_text(errors="replace")),
        "command": f"vivado -mode batch -source {MODES[mode]} -tclargs {jobs}",
        "wall_s": round(wall_s, 1),
        "reports": reports,
        "outputs_sha256": _hashes(flow_dir, outputs),
    }
    record["runs"][mode] = run
    atomic_write_json(flow_dir / MANIFEST_FILE, record)
    return run


def run_vivado(
    out_dir: Path, mode: str = "ooc", *, jobs: int = 4, timeout_s: float | None = None
) -> dict:
    """Run a generated flow with Vivado and return its parsed reports.

    Args:
        out_dir: A directory written by :func:`generate`; replaced as a whole on success.
        mode: ``ooc`` (synthesis of the accelerator alone) or ``bitstream``.
        jobs: Vivado threads / parallel runs.
        timeout_s: Wall-clock limit for Vivado (None: none).

    Returns:
        ``{"vivado", "command", "wall_s", "reports": {"utilization", "timing", "power"[,
        "clock"]}, "outputs_sha256"}``, also stored under ``runs[mode]`` in the manifest.

    Raises:
        ToolNotFound: no Vivado (checked first: nothing is written).
        ConfigError: unknown mode, or ``out_dir`` holds no generated flow.
        VivadoError: Vivado failed; its log is kept next to ``out_dir``.
    """
    _check_mode(mode)
    vivado = require_vivado()
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_FILE).is_file():
        raise ConfigError(f"{out_dir} holds no generated Vivado flow; run generate() first")
    with StagedDir(out_dir, "vivado") as staged:
        # a re-run starts its own build dir afresh; the other mode's results are kept
        build = out_dir / "build"
        shutil.copytree(
            out_dir,
            staged.path,
            dirs_exist_ok=True,
            symlinks=True,
            ignore=lambda d, names: [mode] if Path(d) == build and mode in names else [],
        )
        failure_log = out_dir.with_name(f"{out_dir.name}.vivado_{mode}.log")
        run = _run_in(staged.path, mode, vivado, jobs, timeout_s, failure_log)
        staged.publish()
    return run


def build_bitstream(
    hw_dir: Path,
    board: str | Board,
    out_dir: Path,
    mode: str = "bitstream",
    *,
    jobs: int = 4,
    timeout_s: float | None = None,
    saif: Path | None = None,
    saif_strip_path: str | None = None,
) -> dict:
    """Check Vivado, generate the flow, run it, parse the reports, publish ``out_dir`` whole.

    The CLI's ``qphy bitstream`` (mode ``bitstream``) and ``qphy synth`` (mode ``ooc``).

    Returns:
        The run record (see :func:`run_vivado`) plus ``out_dir`` and ``files``.

    Raises:
        ToolNotFound: no Vivado (before anything is written).
        ConfigError: unknown board or mode, not a hw dir, a design built for another family.
        VivadoError: Vivado failed (its log is kept next to ``out_dir``).
    """
    _check_mode(mode)
    b = _board(board)
    vivado = require_vivado()
    out_dir = Path(out_dir)
    with StagedDir(out_dir, "vivado", inputs=(Path(hw_dir),)) as staged:
        _write_flow(Path(hw_dir), b, staged.path, saif, saif_strip_path)
        failure_log = staged.out_dir.with_name(f"{staged.out_dir.name}.vivado_{mode}.log")
        run = _run_in(staged.path, mode, vivado, jobs, timeout_s, failure_log)
        files = sorted(
            p.relative_to(staged.path)
            for p in staged.path.rglob("*")
            if p.is_file() and "build" not in p.relative_to(staged.path).parts[:1]
        )
        final = staged.publish()
    return {**run, "out_dir": str(final), "files": [str(final / f) for f in files]}
