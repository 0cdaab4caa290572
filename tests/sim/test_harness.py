"""The compiled Verilator harness (sim/harness.py): bit-exact, same cycle figures as the cocotb
bench, faults caught, x-randomised build, content-hashed cache."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from qphy.contracts import StreamSpec
from sim.config import SimConfig
from sim.harness import run_harness
from sim.harness_build import HarnessBuild, build_harness
from sim.verdict import verify_built

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


# --- the small FullyCon of tests/sim/conftest.py (judged by the harness through the flow;
# bit-exactness under backpressure and agreement with cocotb are in test_rtl_verdict.py) ---


@pytest.mark.slow
def test_x_random_build_is_bit_exact(small_rtl, tmp_path):
    """Unknowns randomised (--x-assign/--x-initial unique, seeded per run), not zeroed: the
    design still gives the golden integers and the same cycle figures."""
    out, report = small_rtl
    for seed in (4, 5):
        rep = verify_built(
            out,
            SimConfig(n_vectors=300, seed=seed, x_random=True),
            run_dir=tmp_path / f"x{seed}",
            n_vectors=300,
        )
        assert rep.bit_exact and rep.vectors_checked == 300
        assert rep.latency_cycles == report.latency_cycles
