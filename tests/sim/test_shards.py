"""Sharded verdicts (sim/shards.py): disjoint ordered slices, the asserting shard, merging, and
the same integers from one process, several, and Ray tasks on a local instance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.config import SimConfig
from sim.harness import HarnessResult
from sim.shards import ASSERT_SHARD_VECTORS, Shard, ShardDisagreementError, merge, plan
from sim.verdict import verify_built


@pytest.mark.parametrize(("n", "jobs"), [(1000, 1), (1000, 3), (7, 16), (50_000, 4), (10_001, 2)])
def test_plan_is_disjoint_ordered_and_keeps_an_asserting_shard(n, jobs):
    shards = plan(n, jobs)
    assert shards[0].start == 0 and shards[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:], strict=False))
    assert all(s.size >= 2 for s in shards) and shards[0].assertions
    if n > ASSERT_SHARD_VECTORS and len(shards) > 1:
        # One asserting shard of 10,000 vectors, then one bulk shard per process.
        assert shards[0].size == ASSERT_SHARD_VECTORS and len(shards) <= jobs + 1
        assert not any(s.assertions for s in shards[1:])
    else:
        assert all(s.assertions for s in shards) and len(shards) <= jobs
    assert all(s.assertions for s in plan(n, jobs, bulk_no_assert=False))


def _res(actual, cpf=64.0, deadlock=False):
    return HarnessResult(np.asarray(actual), 100, cpf, 10, deadlock, "", 0, len(actual), 1.0)


def test_merge_concatenates_in_order_and_checks_throughput():
    shards = [Shard(0, 0, 2, True), Shard(1, 2, 4, False)]
    m = merge(shards, [_res([[1], [2]]), _res([[3], [4]])])
    assert np.array_equal(m.actual, [[1], [2], [3], [4]]) and m.latency_cycles == 100
    with pytest.raises(ShardDisagreementError, match="shard 1: 65.0"):
        merge(shards, [_res([[1], [2]]), _res([[3], [4]], cpf=65.0)])
    # A short shard ends the record: the next shard's vectors are not shifted into its place.
    short = dataclasses.replace(_res([[1]]), deadlock=True)
    m = merge(shards, [short, _res([[3], [4]])])
    assert np.array_equal(m.actual, [[1]]) and m.deadlock


@pytest.mark.rtl
def test_sharded_and_ray_runs_give_the_same_integers(small_rtl, tmp_path):
    out, _ = small_rtl
    runs = {}
    for name, jobs, ray in (("one", 1, ""), ("three", 3, ""), ("ray", 2, "local")):
        cfg = SimConfig(n_vectors=600, seed=7, jobs=jobs, ray_address=ray)
        rep = verify_built(out, cfg, run_dir=tmp_path / name, n_vectors=600)
        assert rep.bit_exact and rep.vectors_checked == 600
        runs[name] = (np.load(tmp_path / name / "actual.npy"), rep)
    one, rep1 = runs["one"]
    for name in ("three", "ray"):
        actual, rep = runs[name]
        assert np.array_equal(actual, one)
        assert rep.latency_cycles == rep1.latency_cycles
        assert rep.cycles_per_frame == rep1.cycles_per_frame


_INTERRUPTED = """
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {root!r})
from tests.sim.test_fifos import FRAME, IN_STREAM, OUT_STREAM, _fifo_sources
from sim.harness_build import build_harness
from sim.shards import RunSpec, plan, run_local
tmp = Path({tmp!r})
b = build_harness(_fifo_sources(tmp / "src", FRAME), "qphy_forkjoin", tmp / "cache")
x = np.zeros((8_000_000, FRAME), dtype=np.int64)
spec = RunSpec(IN_STREAM, OUT_STREAM, FRAME, 1, 0.3, 0.3, 8, 2000, 600)
print(b.binary, flush=True)
run_local({{True: b.binary}}, tmp, x, plan(len(x), 2, False), spec, tmp / "run", workers=2)
"""


def _running(binary: str) -> list[int]:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        if (p.info["cmdline"] or [""])[0] == binary:
            found.append(p.pid)
    return found


@pytest.mark.rtl
def test_interrupted_sharded_run_leaves_no_harness(verilator, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    script = _INTERRUPTED.format(root=root, tmp=str(tmp_path))
    from tests.tools import sigint_as_default

    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_default,
    )
    binary = proc.stdout.readline().strip()
    deadline = time.monotonic() + 120
    while len(_running(binary)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_running(binary)) == 2, "the two shards never ran"
    proc.send_signal(signal.SIGINT)
    try:  # the shards still had minutes to run: only ending them makes this quick
        proc.wait(timeout=15)
    finally:
        proc.kill()
        for pid in _running(binary):
            os.killpg(pid, signal.SIGKILL)
    assert proc.returncode != 0 and _running(binary) == []


def test_run_limit_grows_with_the_shard_and_a_ray_timeout_is_named(tmp_path):
    """A flat 900 s limit cut a healthy 495,820-vector shard: the limit grows per vector; a
    Ray task past its limit is a HarnessTimeout naming the shard, not a raw TimeoutExpired."""
    from sim.harness_build import HarnessTimeout
    from sim.shards import RUN_S_PER_VECTOR, RunSpec, _ray_shard, _result, run_limit_s

    spec = RunSpec(None, None, 1, 0, 0.3, 0.3, 4, 1000, 900.0)
    assert run_limit_s(spec, 0) == 900.0
    assert run_limit_s(spec, 495_820) == pytest.approx(900 + 495_820 * RUN_S_PER_VECTOR)
    hang = b"#!/bin/sh\nsleep 30\n"  # a harness that hangs at time 0
    out = _ray_shard(hang, {}, b"", [], 0.5)  # the task body, called here without Ray
    assert out[0] is None
    with pytest.raises(HarnessTimeout, match=r"shard 3 on Ray \(7 vectors\).*0 s wall-clock"):
        _result(Shard(3, 0, 7, False), spec, *out)
