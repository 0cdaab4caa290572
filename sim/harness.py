"""The compiled RTL verification harness: Verilator C++ main, no cocotb, ~100x the cocotb bench.

Contract:

* :func:`sim.harness_build.build_harness` compiles the design with ``sim/harness/
  qphy_harness.cpp`` into one executable, cached by content (see that module).
* :func:`run_harness` packs integer input vectors into AXI-stream beats (:mod:`qphy.host`, the
  board driver's packing), runs the executable in a run directory that holds the design's
  ``mem/`` (the RTL reads ``mem/...`` relative to its working directory) and returns the output
  integers with the same figures as the cocotb bench (:mod:`sim.tb_dataflow`): latency cycles
  on an idle pipeline, steady-state cycles per frame, deadlock, extra beats.

Judging the integers against the golden model is the caller's business (as in sim/verdict.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qphy.contracts import StreamSpec
from qphy.errors import MalformedModelError, PipelineError
from qphy.host import pack_beats, unpack_beats
from sim.harness_build import HarnessBuild, HarnessTimeout
from sim.verilator import wait_limited

#: Cycles between progress lines of the executable (a few per second on the FullyCon).
PROGRESS_CYCLES = 1 << 21


class HarnessRunError(PipelineError):
    """The harness executable failed (bad arguments, files, or a crash)."""


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
        streams: At a deadlock, the handshake state of the top's streams:
            ``{"name", "valid", "ready"}`` each (empty otherwise).
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
    streams: tuple = ()

    @property
    def cycles_per_s(self) -> float:
        return self.sim_cycles / self.wall_s if self.wall_s > 0 else 0.0


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
        # Relative: a build staged in a temporary folder and renamed keeps a working link.
        rel = os.path.relpath(Path(mem_dir).resolve(), run_dir.resolve())
        dest.symlink_to(rel, target_is_directory=True)
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
    return result_from_json(
        r, np.fromfile(out_bin, dtype=np.uint8), out_stream, n_out_elems, n, wall_s
    )


def result_from_json(
    r: dict, out_bytes: np.ndarray, out_stream, n_out_elems: int, n: int, wall_s: float
) -> HarnessResult:
    """A HarnessResult from the harness's results JSON and its raw output bytes (the frames
    received of the ``n`` sent, unpacked); shared by the local run and the sharded/Ray runs."""
    ob = out_stream.beats_per_frame
    received = int(r["beats_received"])
    n_done = min(received, n * ob) // ob
    buf = out_bytes[: n_done * ob * out_stream.beat_bytes].reshape(-1, out_stream.beat_bytes)
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
        streams=tuple(r.get("streams", ())),
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
            rc = wait_limited(proc, timeout_s)
        finally:
            reader.join(timeout=5)
        if rc is None:
            raise HarnessTimeout(
                f"the harness run of {n} vectors exceeded its {timeout_s:.0f} s wall-clock "
                f"limit (in {run_dir})"
            )
        wall_s = time.perf_counter() - t0
    if rc != 0:
        tail = "; ".join(lines[-3:]) or (f"killed by signal {-rc}" if rc < 0 else "no message")
        raise HarnessRunError(f"the harness exited with status {rc} ({tail}); run dir {run_dir}")
    return wall_s, lines
