"""From a QONNX model to a verdict: hw build, stitched RTL, Verilator, cocotb, report.json.

Entry points (what the CLI calls):

* :func:`build_and_verify` for an export directory written by quant/export.py;
* :func:`build_user_onnx` for a user's QONNX file (golden vectors are generated here);
* :func:`verify_built` to re-run the simulation of an existing build (e.g. with other memory
  files or another budget) without rebuilding.

Everything is written into a temporary sibling of ``out_dir`` and renamed at the end, so a build
that fails leaves nothing half-written. A failed verdict (BitMismatchError, LatencyBudgetError)
still writes its report first, then raises.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from hw.config import HwBuildConfig
from hw.runner import run_build
from hw.toolchain import tool_versions
from qphy.errors import BitMismatchError, LatencyBudgetError, PipelineError
from quant.export import execute_batch
from sim.config import SimConfig
from sim.golden import GoldenSet, extend, load_reference, random_inputs, read_export
from sim.host import expected_integers, hw_inputs, hw_outputs_order
from sim.stitch import stitch
from sim.verilator import build, run_test

log = logging.getLogger(__name__)

TB_MODULE = "sim.tb_dataflow"
REPORT_KEYS = (
    "variant",
    "bit_exact",
    "vectors_checked",
    "mismatches",
    "latency_cycles",
    "cycles_per_frame",
    "clock_mhz",
    "latency_us",
    "throughput_vectors_per_s",
    "budget_us",
    "within_budget",
    "fpga_part",
    "estimated_resources",
    "fifo_depths",
    "tool_versions",
)


def _tmp_sibling(out_dir: Path) -> Path:
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def build_rtl_sim(hw_dir: Path, sim_dir: Path, sim_cfg: SimConfig) -> float:
    """Stitch hw_dir/rtl into sim_dir/src and Verilate it into sim_dir/obj; returns seconds."""
    design = stitch(hw_dir / "rtl", sim_dir)
    t0 = time.perf_counter()
    build(design.sources, design.top, sim_dir / "obj", sim_cfg.build_timeout_s)
    seconds = time.perf_counter() - t0
    log.info("Verilator build of %d sources took %.1f s", len(design.sources), seconds)
    return seconds


def _first_mismatch(expected: np.ndarray, actual: np.ndarray) -> tuple[int, int, int]:
    """(number of mismatching vectors, first vector, first index); missing vectors count too."""
    n = len(expected)
    got = len(actual)
    bad_rows = np.flatnonzero(np.any(actual != expected[:got], axis=1)) if got else np.array([])
    count = len(bad_rows) + (n - got)
    if len(bad_rows):
        v = int(bad_rows[0])
        return count, v, int(np.flatnonzero(actual[v] != expected[v])[0])
    return count, got, 0


def verify_built(
    out_dir: Path,
    sim_cfg: SimConfig,
    run_dir: Path | None = None,
    mem_dir: Path | None = None,
    n_vectors: int | None = None,
) -> dict:
    """Simulate an existing build (``out_dir`` from build_and_verify) and judge it.

    Args:
        out_dir: A finished build directory (hw/, sim/, report.json).
        sim_cfg: Backpressure, seed, budget, time limits.
        run_dir: Where this run's files go (default out_dir/sim/run).
        mem_dir: Weight/threshold memory files to load instead of hw/rtl/mem (fault injection).
        n_vectors: Check only the first n vectors.

    Returns the report dict (also written to run_dir/report.json); raises BitMismatchError or
    LatencyBudgetError after writing it.
    """
    out_dir = Path(out_dir)
    run_dir = Path(run_dir or out_dir / "sim" / "run")
    base = json.loads((out_dir / "report.json").read_text())
    hw_report = json.loads((out_dir / "hw" / "hw_report.json").read_text())
    manifest = json.loads((out_dir / "hw" / "rtl" / "manifest.json").read_text())
    inputs = np.load(out_dir / "sim" / "vectors_in.npy")
    expected = np.load(out_dir / "sim" / "vectors_expected.npy")
    if n_vectors is not None:
        inputs, expected = inputs[:n_vectors], expected[:n_vectors]
    report = _simulate(
        out_dir / "sim",
        run_dir,
        manifest,
        hw_report,
        inputs,
        expected,
        sim_cfg,
        base["variant"],
        mem_dir or out_dir / "hw" / "rtl" / "mem",
    )
    (run_dir / "report.json").write_text(json.dumps(report, indent=1))
    judge(report, run_dir)
    return report


def _simulate(
    sim_dir: Path,
    run_dir: Path,
    manifest: dict,
    hw_report: dict,
    inputs: np.ndarray,
    expected: np.ndarray,
    sim_cfg: SimConfig,
    variant: str,
    mem_dir: Path,
) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    shutil.copytree(mem_dir, run_dir / "mem")  # the RTL reads mem/... relative to its cwd
    np.save(run_dir / "inputs.npy", inputs)
    np.save(run_dir / "expected.npy", expected)
    out = manifest["output"]
    job = {
        "inputs": str(run_dir / "inputs.npy"),
        "expected": str(run_dir / "expected.npy"),
        "actual": str(run_dir / "actual.npy"),
        "results": str(run_dir / "results.json"),
        "input": manifest["input"],
        "output": {**out, "n_elems": int(expected.shape[1])},
        "clock_period_ns": round(1000.0 / manifest["clock_mhz"], 6),
        "seed": sim_cfg.seed,
        "source_pause_prob": sim_cfg.source_pause_prob,
        "sink_pause_prob": sim_cfg.sink_pause_prob,
        "n_burst": sim_cfg.n_burst,
        "stall_limit_cycles": sim_cfg.stall_limit_cycles,
    }
    (run_dir / "job.json").write_text(json.dumps(job, indent=1))
    t0 = time.perf_counter()
    run_test(
        sim_dir / "obj",
        "qphy_dataflow_top",
        TB_MODULE,
        run_dir,
        [f"+qphy_job={run_dir / 'job.json'}"],
        sim_cfg.sim_timeout_s,
        sim_cfg.seed,
    )
    sim_s = time.perf_counter() - t0
    if not (run_dir / "results.json").is_file():
        raise PipelineError(f"the simulation wrote no results; see {run_dir / 'sim.log'}")
    res = json.loads((run_dir / "results.json").read_text())
    actual = (
        np.load(run_dir / "actual.npy")
        if (run_dir / "actual.npy").is_file()
        else (np.zeros((0, expected.shape[1]), dtype=np.int64))
    )
    mismatches, first_v, first_i = _first_mismatch(expected, actual)
    if res.get("extra_beats"):
        mismatches = max(mismatches, 1)
    clock_mhz = float(manifest["clock_mhz"])
    latency = res.get("latency_cycles")
    cpf = res.get("cycles_per_frame")
    latency_us = latency / clock_mhz if latency is not None else float("inf")
    report = {
        "variant": variant,
        "bit_exact": mismatches == 0 and not res.get("deadlock"),
        "vectors_checked": int(len(expected)),
        "mismatches": int(mismatches),
        "latency_cycles": int(latency) if latency is not None else -1,
        "cycles_per_frame": int(round(cpf)) if cpf is not None else -1,
        "clock_mhz": clock_mhz,
        "latency_us": round(latency_us, 6),
        "throughput_vectors_per_s": round(clock_mhz * 1e6 / cpf, 1) if cpf else 0.0,
        "budget_us": float(sim_cfg.budget_us),
        "within_budget": latency_us <= sim_cfg.budget_us,
        "fpga_part": manifest["fpga_part"],
        "estimated_resources": hw_report["estimated_resources"],
        "fifo_depths": hw_report["fifo_depths"],
        "tool_versions": tool_versions(),
    }
    details = {
        "first_mismatch": None
        if mismatches == 0
        else {
            "vector": first_v,
            "index": first_i,
            "expected": int(expected[first_v, first_i]) if first_v < len(expected) else None,
            "actual": int(actual[first_v, first_i]) if first_v < len(actual) else None,
        },
        "deadlock": bool(res.get("deadlock")),
        "extra_beats": res.get("extra_beats", 0),
        "analytic_latency_cycles": manifest["analytic_latency_cycles"],
        "analytic_cycles_per_frame": manifest["analytic_cycles_per_frame"],
        "measured_cycles_per_frame_exact": cpf,
        "sim_cycles": res.get("sim_cycles"),
        "sim_wall_s": round(sim_s, 2),
    }
    (run_dir / "details.json").write_text(json.dumps(details, indent=1))
    return report


def judge(report: dict, run_dir: Path) -> None:
    """Raise BitMismatchError / LatencyBudgetError for a failed verdict (report already written)."""
    if not report["bit_exact"]:
        d = json.loads((run_dir / "details.json").read_text())
        fm = d["first_mismatch"] or {"vector": 0, "index": 0, "expected": None, "actual": None}
        what = "RTL vs QONNX golden" + (" (deadlock: output stopped)" if d["deadlock"] else "")
        raise BitMismatchError(
            what,
            fm["vector"],
            fm["index"],
            fm["expected"],
            fm["actual"],
            mismatches=max(1, report["mismatches"]),
            vectors_checked=report["vectors_checked"],
        )
    if not report["within_budget"]:
        raise LatencyBudgetError(
            f"latency {report['latency_cycles']} cycles = {report['latency_us']} us at "
            f"{report['clock_mhz']} MHz exceeds the budget of {report['budget_us']} us"
        )


def _build_and_verify_golden(
    golden: GoldenSet,
    out_dir: Path,
    hw_cfg: HwBuildConfig,
    sim_cfg: SimConfig,
    keep_failed: bool = False,
) -> dict:
    out_dir = Path(out_dir).resolve()
    tmp = _tmp_sibling(out_dir)
    try:
        times = {}
        t0 = time.perf_counter()
        hw = run_build(golden.model_path, hw_cfg, tmp / "hw")
        times["hw_build_s"] = round(time.perf_counter() - t0, 2)
        manifest = json.loads((hw.rtl_dir / "manifest.json").read_text())
        host = manifest["host"]
        inputs = hw_inputs(golden.inputs, host)
        expected = hw_outputs_order(
            expected_integers(golden.outputs, host.get("output_tail", [])), host
        )
        (tmp / "sim").mkdir()
        np.save(tmp / "sim" / "vectors_in.npy", inputs)
        np.save(tmp / "sim" / "vectors_expected.npy", expected)
        times["verilator_build_s"] = round(build_rtl_sim(tmp / "hw", tmp / "sim", sim_cfg), 2)
        hw_report = json.loads(hw.report_path.read_text())
        t1 = time.perf_counter()
        report = _simulate(
            tmp / "sim",
            tmp / "sim" / "run",
            manifest,
            hw_report,
            inputs,
            expected,
            sim_cfg,
            golden.variant,
            hw.rtl_dir / "mem",
        )
        times["simulation_s"] = round(time.perf_counter() - t1, 2)
    except BaseException:
        if not keep_failed:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / "report.json").write_text(json.dumps({k: report[k] for k in REPORT_KEYS}, indent=1))
    (tmp / "timings.json").write_text(json.dumps(times, indent=1))
    _publish(tmp, out_dir)
    log.info("verdict %s: %s", out_dir, report)
    judge(report, out_dir / "sim" / "run")
    return report


def build_and_verify(
    export_dir: Path,
    out_dir: Path,
    hw_cfg: HwBuildConfig | None = None,
    sim_cfg: SimConfig | None = None,
) -> dict:
    """hw build + RTL verdict for an export directory; writes out_dir/report.json.

    Uses the export's golden vectors first; if ``sim_cfg.n_vectors`` asks for more, seeded extra
    vectors (half of them saturating) are run through qonnx for their golden outputs.
    Raises BitMismatchError / LatencyBudgetError after writing the report.
    """
    hw_cfg, sim_cfg = hw_cfg or HwBuildConfig(), sim_cfg or SimConfig()
    golden = extend(read_export(Path(export_dir)), sim_cfg.n_vectors, sim_cfg.seed)
    return _build_and_verify_golden(golden, out_dir, hw_cfg, sim_cfg)


def build_user_onnx(
    path: Path,
    out_dir: Path,
    hw_cfg: HwBuildConfig | None = None,
    sim_cfg: SimConfig | None = None,
    variant: str | None = None,
    saturate_scale: float = 64.0,
) -> dict:
    """The same flow on a user's QONNX file: seeded random inputs (half saturating), golden
    outputs from qonnx. Malformed files raise MalformedModelError; graphs with unsupported ops
    raise UnsupportedLayerError listing every offending node (before any long step)."""
    hw_cfg, sim_cfg = hw_cfg or HwBuildConfig(), sim_cfg or SimConfig()
    path = Path(path)
    from hw.checks import check_qonnx_supported  # noqa: PLC0415
    from hw.runner import load_model  # noqa: PLC0415
    from hw.steps import cleanup_keep_names  # noqa: PLC0415

    check_qonnx_supported(cleanup_keep_names(load_model(path)))
    model = load_reference(path)
    shape = tuple(model.get_tensor_shape(model.graph.input[0].name))[1:]
    x = random_inputs(shape, sim_cfg.n_vectors, sim_cfg.seed, saturate_scale)
    y = execute_batch(model, x).reshape(len(x), -1)
    golden = GoldenSet(path, x, y, variant or path.stem.split(".")[0])
    return _build_and_verify_golden(golden, out_dir, hw_cfg, sim_cfg)
