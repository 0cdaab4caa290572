"""The compiled RTL verification harness: Verilator C++ main, no cocotb, ~100x the cocotb bench.

Contract:

* :func:`build_harness` compiles the stitched design (sources and top as
  :func:`sim.rtl_sources.prepare_sources` returns them) together with ``sim/harness/
  qphy_harness.cpp`` into one executable. Builds are cached by content: the key hashes every
  source's name and bytes, the harness C++, the Verilator/C++ flags, the tool paths and the
  options, so the same design is compiled once per cache directory.
* :func:`run_harness` packs integer input vectors into AXI-stream beats (:mod:`qphy.host`, the
  board driver's packing), runs the executable in a run directory that holds the design's
  ``mem/`` (the RTL reads ``mem/...`` relative to its working directory) and returns the output
  integers with the same figures as the cocotb bench (:mod:`sim.tb_dataflow`): latency cycles
  on an idle pipeline, steady-state cycles per frame, deadlock, extra beats.

Judging the integers against the golden model is the caller's business (as in sim/verdict.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.toolchain import require_tool, tool_search_path, verilator_version
from qphy.contracts import StreamSpec
from qphy.errors import MalformedModelError, PipelineError
from qphy.host import pack_beats, unpack_beats
from sim.verilator import COMPILE_OPT, DEFINES, VERILATOR_ARGS, SimulationTimeout

log = logging.getLogger(__name__)

#: The harness C++ main (part of the cache key).
HARNESS_CPP = Path(__file__).parent / "harness" / "qphy_harness.cpp"
#: Bump when the build recipe changes in a way the key would not see.
CACHE_VERSION = 1
#: Parallel make jobs (the CI and dev machines have 2 cores).
MAKE_JOBS = 2
#: Cycles between progress lines of the executable (a few per second on the FullyCon).
PROGRESS_CYCLES = 1 << 21
_X_FAST = ("--x-assign", "fast", "--x-initial", "fast")
_BINARY = "Vtop"


class HarnessBuildError(PipelineError):
    """Verilator or the C++ build of the harness failed."""


class HarnessRunError(PipelineError):
    """The harness executable failed (bad arguments, files, or a crash)."""


class HarnessTimeout(SimulationTimeout):
    """A harness build or run exceeded its wall-clock limit."""


@dataclass(frozen=True)
class HarnessBuild:
    """A compiled harness. Usable as a path (``os.fspath`` gives the executable).

    Attributes:
        binary: The executable.
        build_s: Seconds spent building it now (0.0 when the cache already held it).
        cached: True when an earlier build was reused.
        key: The content hash naming the cache entry.
        x_random: Built with ``--x-assign unique --x-initial unique``: runs randomise every
            unknown from ``+verilator+seed``.
    """

    binary: Path
    build_s: float
    cached: bool
    key: str
    x_random: bool

    def __fspath__(self) -> str:
        return str(self.binary)


@dataclass(frozen=True)
class HarnessResult:
    """What one harness run measured.

    Attributes:
        actual: Output integers ``(n_received_frames, n_out_elems)`` in stream order, the whole
            frames the verdict phase received (fewer than sent after a deadlock).
        latency_cycles: First input to last output handshake of one frame on an idle pipeline
            (None after a deadlock in that phase).
        cycles_per_frame: Steady-state spacing of frame completions in a back-to-back burst.
        sim_cycles: Clock cycles simulated in all, reset included.
        deadlock: No output progress for ``stall_limit_cycles`` in some phase.
        deadlock_phase: ``latency``, ``throughput``, ``verdict`` or "" (none).
        extra_beats: Output beats beyond the expected number (duplicates).
        beats_received: Output beats of the verdict phase, extra ones included.
        wall_s: Seconds the executable ran.
    """

    actual: np.ndarray
    latency_cycles: int | None
    cycles_per_frame: float | None
    sim_cycles: int
    deadlock: bool
    deadlock_phase: str
    extra_beats: int
    beats_received: int
    wall_s: float

    @property
    def cycles_per_s(self) -> float:
        return self.sim_cycles / self.wall_s if self.wall_s > 0 else 0.0


def _verilator_args(x_random: bool, threads: int) -> list[str]:
    args = list(VERILATOR_ARGS)
    for i in range(len(args) - 1):
        if args[i] in ("--x-assign", "--x-initial"):
            args[i + 1] = "unique" if x_random else "fast"
    if not x_random and not any(a in _X_FAST for a in args):
        args += list(_X_FAST)
    if x_random and "--x-assign" not in args:
        args += ["--x-assign", "unique", "--x-initial", "unique"]
    if threads > 1:
        args += ["--threads", str(threads)]
    return args


def _cache_key(sources: Sequence[Path], top: str, flags: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(f"qphy-harness-{CACHE_VERSION}\0{top}\0".encode())
    h.update("\0".join(flags).encode() + b"\0")
    h.update(HARNESS_CPP.read_bytes())
    for src in sources:
        h.update(Path(src).name.encode() + b"\0")
        h.update(hashlib.sha256(Path(src).read_bytes()).digest())
    return h.hexdigest()


def _run_tool(cmd: Sequence[str], cwd: Path, log_path: Path, deadline: float, env: dict) -> None:
    """Run one build command with its output in log_path; kill its process group on timeout."""
    name = Path(cmd[0]).name
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException as exc:
            _kill(proc)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise HarnessTimeout(
                    f"harness build: '{name}' exceeded the build's wall-clock limit (log in "
                    f"{log_path})"
                ) from None
            raise
    if rc != 0:
        text = log_path.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "error" in ln.lower()][:3]
        detail = "; ".join(errors) or text.strip().splitlines()[-1:] or ""
        raise HarnessBuildError(
            f"harness build: '{name}' failed with exit code {rc} ({detail}); log in {log_path}"
        )


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def build_harness(
    sources: Sequence[Path],
    top: str,
    build_dir: Path,
    *,
    threads: int = 1,
    x_random: bool = False,
    timeout_s: float = 900.0,
) -> HarnessBuild:
    """Compile the harness for a design, or reuse the cached executable of the same content.

    Args:
        sources: HDL sources in compile order (the top's file last), e.g. prepare_sources' list.
        top: The top module (ports ap_clk, ap_rst_n, s_axis_t*, m_axis_t*).
        build_dir: The cache directory; one entry ``<key[:16]>/`` per design and option set.
        threads: Verilator model threads (``--threads``); 1 is fastest for small designs.
        x_random: ``--x-assign unique --x-initial unique`` (unknowns randomised at run time
            from the run's seed) instead of Verilator's fast default.
        timeout_s: Wall-clock limit of the whole build.

    Returns:
        The build (``build_s`` 0.0 when cached). Raises ToolNotFound for a missing verilator,
        make or g++, HarnessBuildError when a tool fails, HarnessTimeout past the limit.
    """
    verilator = require_tool("verilator")
    make = require_tool("make")
    cxx = require_tool("g++")
    sources = [Path(s).resolve() for s in sources]
    if not sources:
        raise HarnessBuildError("harness build: no HDL sources given")
    for src in sources:
        if not src.is_file():
            raise HarnessBuildError(f"harness build: source {src} does not exist")
    vargs = _verilator_args(x_random, threads)
    defines = [f"-D{k}={v}" for k, v in DEFINES.items()]
    make_vars = [
        f"CXX={cxx}",
        f"LINK={cxx}",
        "CFG_CXXFLAGS_PCH_I=-include",
        f"PYTHON3={sys.executable}",
        *COMPILE_OPT,
    ]
    flags = [*vargs, *defines, *make_vars, str(verilator), verilator_version(), f"x={x_random}"]
    key = _cache_key(sources, top, flags)
    build_dir = Path(build_dir).resolve()
    entry = build_dir / key[:16]
    binary = entry / _BINARY
    if binary.is_file() and (entry / "harness.json").is_file():
        log.info("harness cache hit: %s", binary)
        return HarnessBuild(binary, 0.0, True, key, x_random)

    t0 = time.monotonic()
    deadline = t0 + timeout_s
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = build_dir / f".{key[:16]}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    obj = tmp / "obj"
    obj.mkdir(parents=True)
    env = {**os.environ, "PATH": tool_search_path()}
    try:
        _run_tool(
            [
                str(verilator),
                "--cc",
                "--exe",
                "-Mdir",
                str(obj),
                "--top-module",
                top,
                "--prefix",
                "Vtop",
                "-o",
                _BINARY,
                *vargs,
                *defines,
                f"-I{sources[0].parent}",
                str(HARNESS_CPP),
                *[str(s) for s in sources],
            ],
            tmp,
            tmp / "verilate.log",
            deadline,
            env,
        )
        _run_tool(
            [str(make), "-j", str(MAKE_JOBS), "-C", str(obj), "-f", "Vtop.mk", *make_vars],
            tmp,
            tmp / "make.log",
            deadline,
            env,
        )
        shutil.move(obj / _BINARY, tmp / _BINARY)
        shutil.rmtree(obj)
        build_s = time.monotonic() - t0
        meta = {"key": key, "top": top, "x_random": x_random, "threads": threads}
        (tmp / "harness.json").write_text(json.dumps({**meta, "build_s": build_s}, indent=1))
        try:
            tmp.rename(entry)
        except OSError:  # another process published the same key first: use theirs
            if not (entry / _BINARY).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("harness built in %.1f s: %s", build_s, binary)
    return HarnessBuild(binary, build_s, False, key, x_random)


def _write_inputs(path: Path, inputs: np.ndarray, stream: StreamSpec, chunk: int = 1 << 16) -> None:
    with open(path, "wb") as f:
        for start in range(0, len(inputs), chunk):
            pack_beats(inputs[start : start + chunk], stream).tofile(f)


def _link_mem(mem_dir: Path, run_dir: Path) -> None:
    dest = run_dir / "mem"
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        shutil.rmtree(dest)
    try:
        dest.symlink_to(Path(mem_dir).resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(mem_dir, dest)


_PROGRESS_RE = re.compile(r"^qphy-progress (\d+) (\d+) (\d+)$")


def _read_stderr(proc: subprocess.Popen, lines: list[str], progress) -> None:
    """Collect stderr; progress lines move the bar (if any), the rest is kept for errors."""
    for raw in proc.stderr or ():
        line = raw.rstrip("\n")
        m = _PROGRESS_RE.match(line)
        if m:
            if progress is not None:
                bar, task = progress
                bar.update(task, completed=int(m.group(1)), total=int(m.group(2)))
        else:
            lines.append(line)


def run_harness(
    binary: Path | HarnessBuild,
    mem_dir: Path,
    inputs: np.ndarray,
    in_stream: StreamSpec,
    out_stream: StreamSpec,
    n_out_elems: int,
    *,
    run_dir: Path,
    seed: int = 0,
    source_pause_prob: float = 0.3,
    sink_pause_prob: float = 0.3,
    n_burst: int = 32,
    stall_limit_cycles: int = 100_000,
    timeout_s: float = 900.0,
    progress: bool = False,
    drain_cycles: int | None = None,
    x_seed: int | None = None,
) -> HarnessResult:
    """Run every input vector through the compiled design; return outputs and cycle figures.

    Args:
        binary: build_harness' result (or the executable's path).
        mem_dir: The design's memory files (``hw/rtl/mem``), linked into run_dir as ``mem``.
        inputs: Integer vectors ``(n, elems)`` in stream order.
        in_stream, out_stream: The boundary streams (manifest ``input`` / ``output``).
        n_out_elems: Output elements per vector (the frame's padding is cut off).
        run_dir: Working directory of the run (inputs.bin, outputs.bin, results.json).
        seed: Seed of the backpressure pattern (splitmix64, see the C++ header).
        source_pause_prob, sink_pause_prob: Per-cycle stall probabilities, in [0, 1).
        n_burst: Frames of the back-to-back burst that measures cycles per frame (>= 2).
        stall_limit_cycles: Cycles without output progress that count as a deadlock.
        timeout_s: Wall-clock limit of the run.
        progress: Show a rich progress bar of the verdict phase on stderr.
        drain_cycles: Cycles the sink keeps listening after the last expected beat (default
            as the cocotb bench: 4 * beats per frame + 32).
        x_seed: Seed of Verilator's randomised unknowns (``+verilator+seed``, random reset);
            default ``seed`` for an x-random build, none otherwise.
    """
    inputs = np.asarray(inputs, dtype=np.int64)
    if inputs.ndim != 2 or len(inputs) == 0:
        raise MalformedModelError(f"inputs must be (n >= 1, elems) integers, got {inputs.shape}")
    if n_burst < 2:
        raise PipelineError(f"n_burst must be >= 2, got {n_burst}")
    for name, p in (("source_pause_prob", source_pause_prob), ("sink_pause_prob", sink_pause_prob)):
        if not 0.0 <= p < 1.0:
            raise PipelineError(f"{name} must be in [0, 1), got {p}")
    exe = Path(os.fspath(binary))
    x_random = binary.x_random if isinstance(binary, HarnessBuild) else _sidecar_x_random(exe)
    if x_seed is None and x_random:
        x_seed = seed
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _link_mem(Path(mem_dir), run_dir)
    in_bin, out_bin, res = run_dir / "inputs.bin", run_dir / "outputs.bin", run_dir / "results.json"
    res.unlink(missing_ok=True)
    _write_inputs(in_bin, inputs, in_stream)
    n = len(inputs)
    cmd = [
        str(exe),
        f"in={in_bin}",
        f"out={out_bin}",
        f"results={res}",
        f"n_frames={n}",
        f"in_bytes={in_stream.beat_bytes}",
        f"in_beats={in_stream.beats_per_frame}",
        f"out_bytes={out_stream.beat_bytes}",
        f"out_beats={out_stream.beats_per_frame}",
        f"seed={int(seed)}",
        f"src_pause={float(source_pause_prob)!r}",
        f"sink_pause={float(sink_pause_prob)!r}",
        f"n_burst={int(n_burst)}",
        f"stall_limit={int(stall_limit_cycles)}",
        f"progress={PROGRESS_CYCLES if progress else 0}",
    ]
    if drain_cycles is not None:
        cmd.append(f"drain={int(drain_cycles)}")
    if x_seed is not None:
        # Verilator's seed must be non-zero and fit an int.
        cmd += [f"+verilator+seed+{int(x_seed) % 2_000_000_000 + 1}", "+verilator+rand+reset+2"]
    wall_s, stderr_lines = _execute(cmd, run_dir, timeout_s, progress, n)
    if not res.is_file():
        tail = "; ".join(stderr_lines[-3:])
        raise HarnessRunError(f"the harness wrote no results ({tail}); run dir {run_dir}")
    r = json.loads(res.read_text())
    ob = out_stream.beats_per_frame
    expected_beats = n * ob
    received = int(r["beats_received"])
    n_done = min(received, expected_beats) // ob
    buf = np.fromfile(out_bin, dtype=np.uint8)
    buf = buf[: n_done * ob * out_stream.beat_bytes].reshape(-1, out_stream.beat_bytes)
    actual = (
        unpack_beats(buf, out_stream, n_out_elems)
        if n_done
        else np.zeros((0, n_out_elems), dtype=np.int64)
    )
    return HarnessResult(
        actual=actual,
        latency_cycles=r["latency_cycles"],
        cycles_per_frame=r["cycles_per_frame"],
        sim_cycles=int(r["sim_cycles"]),
        deadlock=bool(r["deadlock"]),
        deadlock_phase=str(r["deadlock_phase"]),
        extra_beats=int(r["extra_beats"]),
        beats_received=received,
        wall_s=wall_s,
    )


def _sidecar_x_random(exe: Path) -> bool:
    meta = exe.parent / "harness.json"
    if meta.is_file():
        with contextlib.suppress(ValueError, OSError):
            return bool(json.loads(meta.read_text()).get("x_random", False))
    return False


def _execute(
    cmd: list[str], run_dir: Path, timeout_s: float, progress: bool, n: int
) -> tuple[float, list[str]]:
    """Run the executable with a wall-clock limit; returns (seconds, non-progress stderr)."""
    lines: list[str] = []
    bar_ctx = contextlib.nullcontext()
    bar = None
    if progress:
        from rich.progress import Progress  # noqa: PLC0415 - only for interactive runs

        bar_ctx = bar = Progress(transient=True)
    with bar_ctx:
        task = bar.add_task("RTL verdict (beats)", total=None) if bar is not None else None
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=run_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        reader = threading.Thread(
            target=_read_stderr,
            args=(proc, lines, (bar, task) if bar is not None else None),
            daemon=True,
        )
        reader.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except BaseException as exc:
            _kill(proc)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise HarnessTimeout(
                    f"the harness run of {n} vectors exceeded its {timeout_s:.0f} s wall-clock "
                    f"limit (in {run_dir})"
                ) from None
            raise
        finally:
            reader.join(timeout=5)
        wall_s = time.perf_counter() - t0
    if rc != 0:
        tail = "; ".join(lines[-3:]) or (f"killed by signal {-rc}" if rc < 0 else "no message")
        raise HarnessRunError(f"the harness exited with status {rc} ({tail}); run dir {run_dir}")
    return wall_s, lines
