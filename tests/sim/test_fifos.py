"""The real StreamingFIFOs in simulation (sim/fifos.py): finn-rtllib's fifo at its sized depth,
a too-shallow FIFO caught as a named deadlock, report.json's ``fifo_model``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw.toolchain import finn_rtllib_dir
from qphy.contracts import StreamSpec
from qphy.errors import DeadlockError, PipelineError
from sim.fifos import deadlock_error, patch_fifo_sv, patch_fifo_wrapper
from sim.harness import run_harness
from sim.harness_build import build_harness

HDL = Path(__file__).parent / "hdl" / "qphy_forkjoin.sv"
FRAME = 8
IN_STREAM = StreamSpec("UINT8", 8, False, 1, FRAME, 8)
OUT_STREAM = StreamSpec("UINT16", 16, False, 1, FRAME, 16)
STALL_LIMIT = 2000


def _fifo_sources(dest: Path, depth: int) -> list[Path]:
    """finn-rtllib's fifo.sv and a StreamingFIFO wrapper at ``depth`` made as FINN makes it
    (fifo_template.v), both patched as the verdict patches its copies."""
    hdl = finn_rtllib_dir() / "fifo" / "hdl"
    dest.mkdir(parents=True, exist_ok=True)
    wrapper = (hdl / "fifo_template.v").read_text()
    for key, value in {
        "TOP_MODULE_NAME": "StreamingFIFO_fj",
        "IN_RANGE": "[7:0]",
        "OUT_RANGE": "[7:0]",
        "WIDTH": "8",
        "DATA_LOGFILE": "",
        "DEPTH": str(depth),
        "RAM_STYLE": "auto",
    }.items():
        wrapper = wrapper.replace(f"${key}$", value)
    (dest / "StreamingFIFO_fj.v").write_text(patch_fifo_wrapper(wrapper))
    (dest / "fifo.sv").write_text(patch_fifo_sv((hdl / "fifo.sv").read_text()))
    return [dest / "fifo.sv", dest / "StreamingFIFO_fj.v", HDL]


def _run(verilator, tmp_path: Path, depth: int):
    build = build_harness(
        _fifo_sources(tmp_path / f"src{depth}", depth),
        "qphy_forkjoin",
        tmp_path / "cache",
        timeout_s=600,
    )
    x = np.random.default_rng(3).integers(0, 256, (300, FRAME), dtype=np.int64)
    (tmp_path / "mem").mkdir(exist_ok=True)
    res = run_harness(
        build,
        tmp_path / "mem",
        x,
        IN_STREAM,
        OUT_STREAM,
        FRAME,
        run_dir=tmp_path / f"run{depth}",
        seed=5,
        stall_limit_cycles=STALL_LIMIT,
    )
    return x, res


def test_patches_are_exact_and_idempotent():
    hdl = finn_rtllib_dir() / "fifo" / "hdl"
    fifo = patch_fifo_sv((hdl / "fifo.sv").read_text())
    assert "INIT_ABITS()" not in fifo and "ABITS.lo" not in fifo and "ABITS_LO" in fifo
    assert patch_fifo_sv(fifo) == fifo
    wrapper = patch_fifo_wrapper((hdl / "fifo_template.v").read_text())
    assert "fifo_gauge #(" not in wrapper and "fifo #(.DEPTH($DEPTH$)" in wrapper
    assert patch_fifo_wrapper(wrapper) == wrapper
    with pytest.raises(PipelineError, match="StreamingFIFO wrapper changed upstream"):
        patch_fifo_wrapper("`ifdef FINN_SIMULATION\n\tfifo_gauge #(.W(1)) g();\n`endif\n")


@pytest.mark.rtl
def test_deep_enough_fifo_is_bit_exact(verilator, tmp_path):
    x, res = _run(verilator, tmp_path, depth=FRAME)
    assert not res.deadlock and res.extra_beats == 0
    assert np.array_equal(res.actual, x + x.sum(axis=1, keepdims=True))
    assert deadlock_error(res, len(x), STALL_LIMIT) is None


@pytest.mark.rtl
def test_too_shallow_fifo_is_a_named_deadlock(verilator, tmp_path):
    x, res = _run(verilator, tmp_path, depth=FRAME // 2)
    assert res.deadlock and res.deadlock_phase == "latency"
    err = deadlock_error(res, len(x), STALL_LIMIT)
    with pytest.raises(DeadlockError, match=r"latency phase.*stalled streams.*fifo_in") as info:
        raise err
    # The fork waits on the full FIFO; the accumulator branch is starved, not stalled.
    assert "fifo_in" in info.value.stalled and "acc_in" not in info.value.stalled
    assert json.loads((tmp_path / f"run{FRAME // 2}" / "results.json").read_text())["deadlock"]


@pytest.mark.rtl
@pytest.mark.slow
def test_cocotb_bench_names_the_same_deadlock(verilator, tmp_path):
    """The cocotb bench on the same too-shallow FIFO reports the same stalled streams."""
    from qphy.contracts import SimJob
    from sim.fifos import stalled_streams
    from sim.verdict import TB_MODULE
    from sim.verilator import build, run_test

    sources = _fifo_sources(tmp_path / "src", FRAME // 2)
    build(sources, "qphy_forkjoin", tmp_path / "obj", 900)
    x = np.random.default_rng(3).integers(0, 256, (20, FRAME), dtype=np.int64)
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "inputs.npy", x)
    np.save(run / "expected.npy", x + x.sum(axis=1, keepdims=True))
    job = SimJob(
        str(run / "inputs.npy"),
        str(run / "expected.npy"),
        str(run / "actual.npy"),
        str(run / "results.json"),
        IN_STREAM,
        OUT_STREAM,
        FRAME,
        5.0,
        5,
        0.3,
        0.3,
        8,
        STALL_LIMIT,
    )
    job.write(run / SimJob.FILE)
    run_test(tmp_path / "obj", "qphy_forkjoin", TB_MODULE, run, [f"+qphy_job={run / SimJob.FILE}"],
             600, 5)  # fmt: skip
    res = json.loads((run / "results.json").read_text())
    assert res["deadlock"] and res["deadlock_phase"] == "latency"
    stalled = stalled_streams(res["streams"])
    assert "fifo_in" in stalled and "acc_in" not in stalled
