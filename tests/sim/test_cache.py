"""The compiled-harness cache (sim/cache.py): keys blind to staging paths, LRU pruning, a hit
across two identical builds, and an interrupted build that leaves no temporary or child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hw.config import HwBuildConfig
from qphy.flow import build_and_verify
from sim import cache
from sim.config import SimConfig
from tests.tools import sigint_as_default

ROOT = Path(__file__).resolve().parents[2]


def test_key_ignores_staging_paths_but_not_content(tmp_path):
    a, b = tmp_path / "a" / "w.v", tmp_path / "b" / "w.v"
    for f, stage in ((a, "/tmp/x/.out.tmp-abc/hw/finn/code_gen_1"), (b, "/home/u/.o.tmp-9/z")):
        f.parent.mkdir()
        f.write_text(f'parameter INIT_FILE = "{stage}/memblock.dat";\n')
    assert cache.design_key([a], "t", ["f"]) == cache.design_key([b], "t", ["f"])
    b.write_text('parameter INIT_FILE = "/home/u/.o.tmp-9/z/other.dat";\n')
    assert cache.design_key([a], "t", ["f"]) != cache.design_key([b], "t", ["f"])
    assert cache.design_key([a], "t", ["f"]) != cache.design_key([a], "t", ["g"])


def _entry(root: Path, name: str, size: int, used: float) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "Vtop").write_bytes(b"\0" * size)
    (d / cache.META).write_text("{}")
    os.utime(d / cache.META, (used, used))
    return d


def test_prune_is_lru_and_size_bounded(tmp_path):
    now = time.time()
    old = _entry(tmp_path, "0" * 16, 1000, now - 300)
    mid = _entry(tmp_path, "1" * 16, 1000, now - 200)
    new = _entry(tmp_path, "2" * 16, 1000, now - 100)
    cache.touch(old)  # used just now: the most recent
    dead = tmp_path / f".{'3' * 16}.tmp-999999999"  # a killed build's temporary
    dead.mkdir()
    removed = cache.prune(tmp_path, max_bytes=2100)
    assert set(removed) == {dead, mid}
    assert old.is_dir() and new.is_dir() and not mid.exists() and not dead.exists()
    assert cache.info(tmp_path)["entries"] == 2
    assert cache.prune(tmp_path, max_bytes=0, keep=new) == [old]


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QPHY_CACHE_DIR", str(tmp_path / "c"))
    assert cache.default_harness_cache() == tmp_path / "c" / "harness"
    assert SimConfig().harness_cache == tmp_path / "c" / "harness"
    monkeypatch.delenv("QPHY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.default_harness_cache() == tmp_path / "x" / "qphy" / "harness"
    assert ROOT not in cache.default_harness_cache().parents


@pytest.mark.rtl
def test_identical_builds_hit_the_cache(verilator, small_export_sim, tmp_path):
    sim_cfg = SimConfig(n_vectors=200, seed=3, harness_cache=tmp_path / "cache", jobs=1)
    times = []
    for name in ("first", "second"):
        out = tmp_path / name / "fullycon_w4a4"
        report = build_and_verify(small_export_sim, out, HwBuildConfig(target_cycles=64), sim_cfg)
        assert report.bit_exact and report.fifo_model == "sized"
        times.append(json.loads((out / "timings.json").read_text())["verilator_build_s"])
        # The published run's mem link resolves inside the published folder (staging is gone).
        mem = out / "sim" / "run" / "mem"
        assert mem.is_symlink() and not os.readlink(mem).startswith("/")
        assert mem.resolve() == (out / "hw" / "rtl" / "mem").resolve()
    assert times[0] > 1.0 and times[1] == 0.0
    assert cache.info(tmp_path / "cache")["entries"] == 1


_KILLED_BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.sim.test_fifos import _fifo_sources
from sim.harness_build import build_harness
src = _fifo_sources(Path({tmp!r}) / "src", 8)
print("building", flush=True)
build_harness(src, "qphy_forkjoin", Path({tmp!r}) / "cache", timeout_s=600)
"""


def _procs_under(path: Path) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if str(path) in os.readlink(p / "cwd"):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


@pytest.mark.rtl
def test_interrupted_build_leaves_no_temporary_or_child(verilator, tmp_path):
    script = textwrap.dedent(_KILLED_BUILD).format(root=str(ROOT), tmp=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=sigint_as_default,
    )
    assert proc.stdout.readline().strip() == "building"
    tmp_dirs: list[Path] = []
    deadline = time.monotonic() + 60
    while not tmp_dirs and time.monotonic() < deadline:  # wait until the compilers run
        time.sleep(0.2)
        tmp_dirs = list((tmp_path / "cache").glob(".*.tmp-*/obj/*.o")) or []
        if not tmp_dirs and (tmp_path / "cache").is_dir():
            tmp_dirs = [d for d in (tmp_path / "cache").glob(".*.tmp-*") if _procs_under(d)]
    assert tmp_dirs, "the build never started compiling"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert not list((tmp_path / "cache").glob(".*.tmp-*"))
    assert _procs_under(tmp_path / "cache") == []


def test_cache_command_reports_and_prunes(monkeypatch, tmp_path, capsys):
    from qphy.cli import main

    monkeypatch.setenv("QPHY_CACHE_DIR", str(tmp_path))
    _entry(tmp_path / "harness", "4" * 16, 2000, time.time())
    assert main(["cache", "info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["size_bytes"] >= 2000
    assert info["path"] == str(tmp_path / "harness")
    assert main(["cache", "prune", "--max-mb", "0"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert cache.info(tmp_path / "harness")["entries"] == 0
    assert main(["cache", "prune", "--max-mb", "-1"]) == 2
