"""The sim stage: judge a built RTL directory. It never builds hardware itself.

Input: a hw directory (``rtl/manifest.json``, ``rtl/src`` with the stitched top, ``rtl/mem``,
``hw_report.json``) and integer vectors in stream order (what the accelerator receives and must
send back; :mod:`qphy.host` makes them from golden floats).

Output, under a sim directory: ``src/`` (sources patched for Verilator), ``obj/`` (the Verilated
model), ``vectors_in.npy``/``vectors_expected.npy`` and ``run/`` with ``job.json`` (a
:class:`~qphy.contracts.SimJob`), ``actual.npy``, ``results.json``, ``details.json`` and
``report.json`` (a :class:`~qphy.contracts.Report`). A failed verdict writes its report first,
then raises BitMismatchError or LatencyBudgetError.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from hw.toolchain import tool_versions
from qphy.contracts import Manifest, Report, SimJob
from qphy.errors import (
    AccumulatorOverflowError,
    BitMismatchError,
    DeadlockError,
    LatencyBudgetError,
    PipelineError,
)
from qphy.fsutil import atomic_write_json, atomic_write_text
from sim.build_limit import build_timeout_s, timeout_message
from sim.config import Bench, SimConfig
from sim.coverage import CORNER_DIR
from sim.fifos import fifo_model, stalled_streams
from sim.rtl_sources import prepare_sources
from sim.verilator import SimulationTimeout, build, run_test

log = logging.getLogger(__name__)

TB_MODULE = "sim.tb_dataflow"
VECTORS_IN = "vectors_in.npy"
VECTORS_EXPECTED = "vectors_expected.npy"
#: File in the sim dir naming the compiled harness (which lives in the content-hashed cache).
HARNESS_LINK = "harness_binary.txt"
#: The same for the ``--no-assert`` build of the bulk shards (sim/shards.py), when built.
HARNESS_LINK_BULK = "harness_binary_noassert.txt"


def build_rtl_sim(hw_dir: Path, sim_dir: Path, sim_cfg: SimConfig) -> float:
    """Patch copies of hw_dir/rtl/src into sim_dir/src and compile the bench's model: the
    harness executable (cached by content under ``sim_cfg.harness_cache``) or the cocotb
    model in sim_dir/obj. Returns the build's seconds (0 for a cached harness)."""
    design = prepare_sources(Path(hw_dir) / "rtl", Path(sim_dir))
    limit_s = build_timeout_s(sim_cfg.build_timeout_s, design.manifest)
    try:
        return _build(design, sim_dir, sim_cfg, limit_s)
    except SimulationTimeout as exc:  # HarnessTimeout too: one line naming the limit
        raise BuildTimeout(timeout_message(limit_s, sim_cfg.build_timeout_s, str(exc))) from None


class BuildTimeout(SimulationTimeout):
    """The Verilator build of a design ran past its wall-clock limit."""


def _build(design, sim_dir: Path, sim_cfg: SimConfig, limit_s: float) -> float:
    t0 = time.perf_counter()
    if sim_cfg.bench is Bench.HARNESS:
        from sim.harness_build import build_harness  # noqa: PLC0415
        from sim.shards import plan  # noqa: PLC0415

        shards = plan(sim_cfg.n_vectors, sim_cfg.jobs, sim_cfg.bulk_no_assert)
        seconds = 0.0
        builds = {}
        # The asserting build always; the --no-assert one when bulk shards will use it.
        for assertions in sorted({True} | {s.assertions for s in shards}, reverse=True):
            built = build_harness(
                design.sources,
                design.top,
                sim_cfg.harness_cache,
                x_random=sim_cfg.x_random,
                timeout_s=limit_s,
                assertions=assertions,
                compiler=sim_cfg.compiler,
            )
            link = HARNESS_LINK if assertions else HARNESS_LINK_BULK
            atomic_write_text(Path(sim_dir) / link, str(built.binary))
            builds["asserting" if assertions else "no_assert"] = round(built.build_s, 2)
            seconds += built.build_s
        if "no_assert" not in builds:
            (Path(sim_dir) / HARNESS_LINK_BULK).unlink(missing_ok=True)
        atomic_write_json(Path(sim_dir) / "harness_builds.json", builds)
    else:
        build(design.sources, design.top, Path(sim_dir) / "obj", limit_s)
        seconds = time.perf_counter() - t0
    log.info("%s build of %d sources: %.1f s", sim_cfg.bench, len(design.sources), seconds)
    return seconds


def run_cocotb(
    manifest: Manifest,
    obj_dir: Path,
    run_dir: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    sim_cfg: SimConfig,
    mem_dir: Path,
) -> tuple[dict, np.ndarray]:
    """The cocotb bench (sim/tb_dataflow.py) on the model compiled in ``obj_dir``: writes the
    SimJob and vectors into ``run_dir`` (with a copy of ``mem_dir``, which the RTL reads as
    ``mem/...``), runs it and returns its results and the output integers it received."""
    shutil.copytree(mem_dir, run_dir / "mem")
    np.save(run_dir / "inputs.npy", inputs)
    np.save(run_dir / "expected.npy", expected)
    job = SimJob(
        inputs=str(run_dir / "inputs.npy"),
        expected=str(run_dir / "expected.npy"),
        actual=str(run_dir / "actual.npy"),
        results=str(run_dir / "results.json"),
        input=manifest.input,
        output=manifest.output,
        n_out_elems=int(expected.shape[1]),
        clock_period_ns=round(1000.0 / manifest.clock_mhz, 6),
        seed=sim_cfg.seed,
        source_pause_prob=sim_cfg.source_pause_prob,
        sink_pause_prob=sim_cfg.sink_pause_prob,
        n_burst=sim_cfg.n_burst,
        stall_limit_cycles=sim_cfg.stall_limit_cycles,
    )
    job.write(run_dir / SimJob.FILE)
    if not obj_dir.is_dir():
        raise PipelineError(f"no cocotb model in {obj_dir}; build it with bench=cocotb")
    run_test(
        obj_dir,
        manifest.top,
        TB_MODULE,
        run_dir,
        [f"+qphy_job={run_dir / SimJob.FILE}"],
        sim_cfg.sim_timeout_s,
        sim_cfg.seed,
    )
    if not (run_dir / "results.json").is_file():
        raise PipelineError(f"the simulation wrote no results; see {run_dir / 'sim.log'}")
    res = json.loads((run_dir / "results.json").read_text())
    actual = (
        np.load(run_dir / "actual.npy")
        if (run_dir / "actual.npy").is_file()
        else np.zeros((0, expected.shape[1]), dtype=np.int64)
    )
    return res, actual


def _run_harness(manifest, sim_dir, run_dir, inputs, expected, sim_cfg, mem_dir):
    from sim.shards import RunSpec, run_sharded  # noqa: PLC0415

    binaries = {}
    for assertions, name in ((True, HARNESS_LINK), (False, HARNESS_LINK_BULK)):
        link = sim_dir / name
        binary = Path(link.read_text().strip()) if link.is_file() else None
        if binary is not None and binary.is_file():
            binaries[assertions] = binary
    if True not in binaries:
        raise PipelineError(f"{sim_dir} has no compiled harness; build it with bench=harness")
    spec = RunSpec(
        in_stream=manifest.input,
        out_stream=manifest.output,
        n_out_elems=int(expected.shape[1]),
        seed=sim_cfg.seed,
        source_pause_prob=sim_cfg.source_pause_prob,
        sink_pause_prob=sim_cfg.sink_pause_prob,
        n_burst=sim_cfg.n_burst,
        stall_limit_cycles=sim_cfg.stall_limit_cycles,
        timeout_s=sim_cfg.sim_timeout_s,
        x_seed=sim_cfg.seed if sim_cfg.x_random else None,
    )
    r, shards = run_sharded(
        binaries,
        mem_dir,
        inputs,
        spec,
        run_dir,
        jobs=sim_cfg.jobs,
        bulk_no_assert=sim_cfg.bulk_no_assert,
        ray_address=sim_cfg.ray_address,
        progress=sim_cfg.progress,
    )
    res = {
        "latency_cycles": r.latency_cycles,
        "cycles_per_frame": r.cycles_per_frame,
        "deadlock": r.deadlock,
        "deadlock_phase": r.deadlock_phase,
        "extra_beats": r.extra_beats,
        "sim_cycles": r.sim_cycles,
        "cycles_per_s": round(r.cycles_per_s),
        "streams": list(r.streams),
        "shards": shards,
    }
    atomic_write_json(run_dir / "results.json", res)
    np.save(run_dir / "actual.npy", r.actual)
    return res, r.actual


def _coverage(hw_dir: Path, sim_dir: Path, inputs: np.ndarray, expected: np.ndarray) -> dict:
    """The report's coverage block (sim/coverage.py) over the vectors simulated."""
    from sim.coverage import CORNERS_FILE, coverage, load_layers  # noqa: PLC0415

    t0 = time.perf_counter()
    corners = {"count": 0, "note": "not generated"}
    if (sim_dir / CORNERS_FILE).is_file():
        corners = json.loads((sim_dir / CORNERS_FILE).read_text())
    layers, in_range, unsupported = load_layers(hw_dir)
    if unsupported or not layers:
        return {"unsupported": unsupported or ["no MVAU"]}
    block = coverage(layers, in_range, inputs, int(corners["count"]), expected)
    if corners.get("note"):
        block["corner_note"] = corners["note"]
    block["coverage_s"] = round(time.perf_counter() - t0, 2)
    return block


def _judge_corners(report, block, expected, actual, n_user, run_dir):
    """Bit-exactness of the corner vectors (after the user's ``n_user``): into the coverage
    block, and into the verdict (with the run's vector index) when the user's vectors passed."""
    count, vector, index = first_mismatch(expected[n_user:], actual[n_user:])
    block = {**block, "corner_bit_exact": count == 0, "corner_mismatches": count}
    if count and report.bit_exact:
        details = json.loads((Path(run_dir) / "details.json").read_text())
        v = n_user + vector
        details["first_mismatch"] = {
            "vector": v,
            "index": index,
            "expected": int(expected[v, index]),
            "actual": int(actual[v, index]) if v < len(actual) else None,
            "corner_vector": vector,
        }
        atomic_write_json(Path(run_dir) / "details.json", details)
        report = dataclasses.replace(report, bit_exact=False, mismatches=count)
    return report, block


def first_mismatch(expected: np.ndarray, actual: np.ndarray) -> tuple[int, int, int]:
    """(number of mismatching vectors, first vector, first index); missing vectors count too."""
    n = len(expected)
    got = len(actual)
    bad_rows = np.flatnonzero(np.any(actual != expected[:got], axis=1)) if got else np.array([])
    count = len(bad_rows) + (n - got)
    if len(bad_rows):
        v = int(bad_rows[0])
        return count, v, int(np.flatnonzero(actual[v] != expected[v])[0])
    return count, got, 0


def simulate(
    hw_dir: Path,
    sim_dir: Path,
    sim_cfg: SimConfig,
    variant: str,
    run_dir: Path | None = None,
    mem_dir: Path | None = None,
    n_vectors: int | None = None,
) -> Report:
    """Run ``sim_cfg.bench`` on the compiled model with the vectors saved in sim_dir; write
    run_dir/report.json and judge it (raises after writing on a failed verdict)."""
    hw_dir, sim_dir = Path(hw_dir), Path(sim_dir)
    run_dir = Path(run_dir or sim_dir / "run")
    manifest = Manifest.read(hw_dir / "rtl" / Manifest.FILE)
    hw_report = json.loads((hw_dir / "hw_report.json").read_text())
    inputs = np.load(sim_dir / VECTORS_IN)
    expected = np.load(sim_dir / VECTORS_EXPECTED)
    if n_vectors is not None:
        inputs, expected = inputs[:n_vectors], expected[:n_vectors]
    # The corner vectors (sim/coverage.py) run after the user's vectors and are judged apart.
    n_user = len(inputs)
    corners = sim_dir / CORNER_DIR
    if (corners / VECTORS_IN).is_file():
        inputs = np.concatenate([inputs, np.load(corners / VECTORS_IN)])
        expected = np.concatenate([expected, np.load(corners / VECTORS_EXPECTED)])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    mem_dir = Path(mem_dir or hw_dir / "rtl" / "mem")
    t0 = time.perf_counter()
    if sim_cfg.bench is Bench.HARNESS:
        res, actual = _run_harness(manifest, sim_dir, run_dir, inputs, expected, sim_cfg, mem_dir)
    else:
        obj_dir = sim_dir / "obj"
        res, actual = run_cocotb(manifest, obj_dir, run_dir, inputs, expected, sim_cfg, mem_dir)
    sim_s = time.perf_counter() - t0
    res["bench"] = str(sim_cfg.bench)
    if len(inputs) > n_user:  # actual.npy holds the user's vectors, as without corners
        np.save(run_dir / "actual.npy", actual[:n_user])
        np.save(run_dir / "corner_actual.npy", actual[n_user:])
    report = _report(
        manifest, hw_report, expected[:n_user], actual[:n_user], res, sim_cfg, variant, run_dir,
        sim_s,
    )  # fmt: skip
    block = _coverage(hw_dir, sim_dir, inputs, expected)
    if len(inputs) > n_user and "corner_vectors" in block:
        report, block = _judge_corners(report, block, expected, actual, n_user, run_dir)
    report = dataclasses.replace(
        report,
        fifo_model=fifo_model(sim_dir / "src"),
        coverage=block,
    )
    report.write(run_dir / Report.FILE)
    judge(report, run_dir)
    return report


def _report(manifest, hw_report, expected, actual, res, sim_cfg, variant, run_dir, sim_s):
    mismatches, first_v, first_i = first_mismatch(expected, actual)
    if res.get("extra_beats"):
        mismatches = max(mismatches, 1)
    latency = res.get("latency_cycles")
    cpf = res.get("cycles_per_frame")
    latency_us = latency / manifest.clock_mhz if latency is not None else float("inf")
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
        "deadlock_phase": res.get("deadlock_phase", ""),
        "stalled_streams": stalled_streams(res.get("streams", []), manifest),
        "stall_limit_cycles": sim_cfg.stall_limit_cycles,
        "vectors_received": int(len(actual)),
        "extra_beats": res.get("extra_beats", 0),
        "analytic_latency_cycles": manifest.analytic_latency_cycles,
        "analytic_cycles_per_frame": manifest.analytic_cycles_per_frame,
        "measured_cycles_per_frame_exact": cpf,
        "sim_cycles": res.get("sim_cycles"),
        "sim_wall_s": round(sim_s, 2),
        "bench": res["bench"],
        "sim_cycles_per_s": round(res["sim_cycles"] / sim_s) if res.get("sim_cycles") else None,
        "vectors_per_s": round(len(expected) / sim_s, 1) if sim_s > 0 else None,
        "shards": res.get("shards", []),
    }
    atomic_write_json(run_dir / "details.json", details)
    return Report(
        variant=variant,
        bit_exact=mismatches == 0 and not res.get("deadlock"),
        vectors_checked=int(len(expected)),
        mismatches=int(mismatches),
        latency_cycles=int(latency) if latency is not None else -1,
        cycles_per_frame=int(round(cpf)) if cpf is not None else -1,
        clock_mhz=float(manifest.clock_mhz),
        latency_us=round(latency_us, 6),
        throughput_vectors_per_s=round(manifest.clock_mhz * 1e6 / cpf, 1) if cpf else 0.0,
        budget_us=float(sim_cfg.budget_us),
        within_budget=latency_us <= sim_cfg.budget_us,
        fpga_part=manifest.fpga_part,
        estimated_resources=hw_report["estimated_resources"],
        fifo_depths=hw_report["fifo_depths"],
        tool_versions=tool_versions(),
    )


def judge(report: Report, run_dir: Path) -> None:
    """Raise BitMismatchError / LatencyBudgetError for a failed verdict (report already written)."""
    if not report.bit_exact:
        d = json.loads((Path(run_dir) / "details.json").read_text())
        if d["deadlock"] and "stalled_streams" in d:
            raise DeadlockError(
                d.get("deadlock_phase") or "verdict",
                d["stalled_streams"],
                d["vectors_received"],
                report.vectors_checked,
                d["stall_limit_cycles"],
            )
        fm = d["first_mismatch"] or {"vector": 0, "index": 0, "expected": None, "actual": None}
        what = "RTL vs QONNX golden" + (" (deadlock: output stopped)" if d["deadlock"] else "")
        raise BitMismatchError(
            what,
            fm["vector"],
            fm["index"],
            fm["expected"],
            fm["actual"],
            mismatches=max(1, report.mismatches),
            vectors_checked=report.vectors_checked,
        )
    from sim.coverage import overflows  # noqa: PLC0415

    over = overflows(report.coverage)
    if over:
        raise AccumulatorOverflowError("accumulator overflow: " + "; ".join(over))
    if not report.within_budget:
        raise LatencyBudgetError(
            f"latency {report.latency_cycles} cycles = {report.latency_us} us at "
            f"{report.clock_mhz} MHz exceeds the budget of {report.budget_us} us"
        )


def verify_built(
    out_dir: Path,
    sim_cfg: SimConfig,
    run_dir: Path | None = None,
    mem_dir: Path | None = None,
    n_vectors: int | None = None,
) -> Report:
    """Re-run the verdict of a finished build directory (``out_dir`` with hw/, sim/,
    report.json), e.g. with other memory files (fault injection), another budget or the other
    bench (whose model is compiled first if the build did not)."""
    out_dir = Path(out_dir)
    variant = Report.read(out_dir / Report.FILE).variant
    sim_dir = out_dir / "sim"
    link = sim_dir / HARNESS_LINK
    built = (
        (sim_dir / "obj").is_dir()
        if sim_cfg.bench is Bench.COCOTB
        # The cached executable may have been pruned since (sim/cache.py): rebuild then.
        else link.is_file() and Path(link.read_text().strip()).is_file()
    )
    if not built:  # the build was verified with the other bench: compile this one's model
        build_rtl_sim(out_dir / "hw", sim_dir, sim_cfg)
    return simulate(
        out_dir / "hw",
        out_dir / "sim",
        sim_cfg,
        variant,
        run_dir=run_dir or out_dir / "sim" / "run",
        mem_dir=mem_dir,
        n_vectors=n_vectors,
    )
