"""SIGTERM (what `timeout`, a CI cancel and `docker stop` send) in the middle of a Verilator
build: a clean exit 143, no staging folder, no lock, no cache temporary, no child process left,
and the cache still usable by the next build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.hw.onnx_graphs import tiny_mlp_graph

pytestmark = pytest.mark.rtl

ROOT = Path(__file__).resolve().parents[2]
COMPILERS = {"make", "g++", "cc1plus", "clang++", "verilator", "verilator_bin", "ccache", "as"}


def _compiling(proc: psutil.Process) -> list[psutil.Process]:
    try:
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for k in kids:
        try:
            if k.name() in COMPILERS or Path(k.name()).name.startswith("verilator"):
                found.append(k)
        except psutil.NoSuchProcess:
            continue
    return found


def test_sigterm_during_verilator_build_leaves_nothing_behind(verilator, tmp_path):
    tiny_mlp_graph(tmp_path / "my.onnx", n_in=24, n_out=12)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QPHY_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "qphy.cli", "build", "onnx", "my.onnx", "--out", "b"]
    argv += ["--vectors", "50"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    kids: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None and not kids:
        kids = _compiling(me)
        time.sleep(0.05)
    assert kids, "the build never reached its Verilator/C++ compile"
    time.sleep(1.0)  # well inside the compile
    kids = me.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "qphy: interrupted by SIGTERM; partial outputs removed" in err
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(kids, timeout=10)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphaned child processes: {[p.name() for p in alive]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "my.onnx"]
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if "tmp" in p.name.lower()]
    assert not leftovers, leftovers
    # the cache is still usable: the same build now runs to its verdict
    res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "PASS" in res.stdout
