"""The compiled Verilator harness (sim/harness.py): bit-exact, same cycle figures as the cocotb
bench, faults caught, x-randomised build, content-hashed cache."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from qphy.contracts import Manifest, SimJob, StreamSpec
from sim.harness import HarnessBuild, build_harness, run_harness

pytestmark = pytest.mark.rtl

HDL = Path(__file__).parent / "hdl" / "qphy_faulty_passthrough.sv"
#: The pass-through's stream: 72-bit beats (VlWide ports), 9 signed bytes per beat, 2 beats.
PASS_STREAM = StreamSpec("INT8", 8, True, 9, 2, 72)
SEED = 7


def _vectors(n: int, elems: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (n, elems), dtype=np.int64)


# --- a hand-written design: exact figures, a lost and a repeated beat ---


@pytest.fixture(scope="module")
def passthrough_builds(verilator, tmp_path_factory):
    cache = tmp_path_factory.mktemp("harness_cache_hdl")
    return {
        top: build_harness([HDL], top, cache, timeout_s=600)
        for top in ("passthrough_ok", "passthrough_drop", "passthrough_dup")
    }


def _run_pass(build: HarnessBuild, run_dir: Path, n: int = 400) -> tuple[np.ndarray, object]:
    x = _vectors(n, PASS_STREAM.elems_per_frame, seed=1)
    mem = run_dir / "empty_mem"
    mem.mkdir(parents=True)
    res = run_harness(
        build,
        mem,
        x,
        PASS_STREAM,
        PASS_STREAM,
        PASS_STREAM.elems_per_frame,
        run_dir=run_dir,
        seed=SEED,
        stall_limit_cycles=1000,
    )
    return x, res


def test_passthrough_exact_figures(passthrough_builds, tmp_path):
    x, res = _run_pass(passthrough_builds["passthrough_ok"], tmp_path)
    assert np.array_equal(res.actual, x)
    # One beat per two cycles, two beats per frame: the last beat leaves 3 cycles after the
    # first one entered; frames complete every 4 cycles.
    assert res.latency_cycles == 3
    assert res.cycles_per_frame == 4.0
    assert not res.deadlock and res.extra_beats == 0 and res.beats_received == 800


def test_dropped_beat_is_a_deadlock(passthrough_builds, tmp_path):
    x, res = _run_pass(passthrough_builds["passthrough_drop"], tmp_path)
    assert res.deadlock and res.deadlock_phase == "verdict"
    assert res.beats_received == 799 and res.extra_beats == 0
    assert len(res.actual) == 399 and not np.array_equal(res.actual, x[:399])


def test_duplicated_beat_is_an_extra_beat(passthrough_builds, tmp_path):
    x, res = _run_pass(passthrough_builds["passthrough_dup"], tmp_path)
    assert not res.deadlock
    assert res.extra_beats == 1 and res.beats_received == 801
    assert not np.array_equal(res.actual, x)


def test_cache_reuses_the_binary(passthrough_builds, tmp_path):
    first = passthrough_builds["passthrough_ok"]
    cache = first.binary.parent.parent
    t0 = time.perf_counter()
    again = build_harness([HDL], "passthrough_ok", cache, timeout_s=600)
    assert time.perf_counter() - t0 < 5.0
    assert again.cached and again.build_s == 0.0 and again.binary == first.binary
    assert first.build_s > 0.0 and not first.cached
    # Another source content is another design: a new key.
    changed = tmp_path / HDL.name
    changed.write_text(HDL.read_text() + "\n// changed\n")
    other = build_harness([changed], "passthrough_ok", cache, timeout_s=600)
    assert not other.cached and other.key != first.key


# --- the small FullyCon through the hw flow ---


@pytest.fixture(scope="module")
def small_design(verilator, tmp_path_factory):
    """(rtl dir, manifest, sources, top, inputs, expected) of a small FullyCon w4a4 hw build."""
    from hw.config import HwBuildConfig
    from hw.runner import run_build
    from qphy.host import expected_integers, stream_inputs
    from sim.rtl_sources import prepare_sources
    from tests.hw.fixture_export import make_export

    base = tmp_path_factory.mktemp("harness_fullycon")
    export = make_export(base / "export", bits="w4a4", n_golden=512)
    hw = run_build(export / "model.qonnx.onnx", HwBuildConfig(target_cycles=64), base / "hw")
    manifest = Manifest.read(hw.rtl_dir / "manifest.json")
    design = prepare_sources(hw.rtl_dir, base / "sim")
    inputs = stream_inputs(np.load(export / "golden_in.npy"), manifest.host)
    expected = expected_integers(np.load(export / "golden_out.npy"), manifest.host)
    return hw.rtl_dir, manifest, design.sources, design.top, inputs, expected


@pytest.fixture(scope="module")
def small_harness(small_design, tmp_path_factory):
    _, _, sources, top, _, _ = small_design
    return build_harness(sources, top, tmp_path_factory.mktemp("harness_cache"), timeout_s=900)


def _run_small(build, small_design, run_dir, **kw):
    rtl, manifest, _, _, inputs, expected = small_design
    return run_harness(
        build,
        rtl / "mem",
        inputs,
        manifest.input,
        manifest.output,
        expected.shape[1],
        run_dir=run_dir,
        **kw,
    )


@pytest.mark.slow
def test_bit_exact_under_backpressure(small_harness, small_design, tmp_path):
    expected = small_design[5]
    res = _run_small(
        small_harness,
        small_design,
        tmp_path,
        seed=SEED,
        source_pause_prob=0.3,
        sink_pause_prob=0.5,
    )
    assert not res.deadlock and res.extra_beats == 0
    assert np.array_equal(res.actual, expected)
    manifest = small_design[1]
    assert res.cycles_per_frame == pytest.approx(manifest.analytic_cycles_per_frame, rel=0.10)


@pytest.mark.slow
def test_x_random_build_is_bit_exact(small_design, tmp_path):
    _, _, sources, top, _, expected = small_design
    build = build_harness(sources, top, tmp_path / "cache", x_random=True, timeout_s=900)
    assert build.x_random
    for x_seed in (1, 2):
        res = _run_small(build, small_design, tmp_path / f"run{x_seed}", seed=3, x_seed=x_seed)
        assert not res.deadlock and res.extra_beats == 0
        assert np.array_equal(res.actual, expected)


def _cocotb_figures(small_design, run_dir: Path, n: int) -> dict:
    """latency and cycles/frame of the cocotb bench (sim/tb_dataflow.py) on the same vectors."""
    import json
    import shutil

    from sim.verilator import build, run_test

    rtl, manifest, sources, top, inputs, expected = small_design
    build(sources, top, run_dir / "obj", 900)
    run = run_dir / "run"
    run.mkdir()
    shutil.copytree(rtl / "mem", run / "mem")
    np.save(run / "inputs.npy", inputs[:n])
    np.save(run / "expected.npy", expected[:n])
    SimJob(
        inputs=str(run / "inputs.npy"),
        expected=str(run / "expected.npy"),
        actual=str(run / "actual.npy"),
        results=str(run / "results.json"),
        input=manifest.input,
        output=manifest.output,
        n_out_elems=int(expected.shape[1]),
        clock_period_ns=round(1000.0 / manifest.clock_mhz, 6),
        seed=SEED,
        source_pause_prob=0.3,
        sink_pause_prob=0.3,
        n_burst=32,
        stall_limit_cycles=100_000,
    ).write(run / "job.json")
    plusargs = [f"+qphy_job={run / 'job.json'}"]
    run_test(run_dir / "obj", top, "sim.tb_dataflow", run, plusargs, 900, 1)
    return json.loads((run / "results.json").read_text())


@pytest.mark.slow
def test_cycle_figures_match_the_cocotb_bench(small_harness, small_design, tmp_path):
    n = 200
    ref = _cocotb_figures(small_design, tmp_path / "cocotb", n)
    rtl, manifest, _, _, inputs, expected = small_design
    res = run_harness(
        small_harness,
        rtl / "mem",
        inputs[:n],
        manifest.input,
        manifest.output,
        expected.shape[1],
        run_dir=tmp_path / "harness",
        seed=SEED,
        n_burst=32,
    )
    assert ref["mismatches"] == 0 and np.array_equal(res.actual, expected[:n])
    assert res.latency_cycles == ref["latency_cycles"]
    assert res.cycles_per_frame == ref["cycles_per_frame"]
