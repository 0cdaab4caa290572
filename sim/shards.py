"""The verdict's vectors split over harness processes, here or as Ray tasks on a cluster.

Contract: :func:`plan` cuts ``n`` vectors into disjoint, ordered slices (shards). Each shard is
one run of the compiled harness from reset with its own backpressure seed (``seed + k``), so
shard 0 of a one-shard plan is exactly the unsharded run. :func:`merge` concatenates the outputs
in order (stopping at the first shard that came back short, so a missing vector is never
hidden), takes the latency from shard 0 and the cycles per frame from every shard, which must
agree (:class:`ShardDisagreementError` otherwise).

Assertions: with several shards and more than :data:`ASSERT_SHARD_VECTORS` vectors, shard 0
keeps the RTL's assertions over at least that many vectors, the other (bulk) shards run a
``--no-assert`` build (both builds are cached by content).

Ray (:func:`run_on_ray`): the executable, the memory files and each shard's packed inputs are
shipped to the workers as bytes; the task (:func:`_ray_shard`) imports nothing of qphy, so a
worker needs only Python and the C++ runtime the executable links against.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qphy.contracts import StreamSpec
from qphy.errors import ConfigError, PipelineError
from qphy.host import pack_beats
from sim.harness import HarnessResult, HarnessRunError, result_from_json, run_harness
from sim.harness_build import HarnessTimeout

#: Vectors the asserting shard checks at least when the bulk shards run without assertions.
ASSERT_SHARD_VECTORS = 10_000


class ShardDisagreementError(PipelineError):
    """Shards of one verdict measured different steady-state cycles per frame."""


@dataclass(frozen=True)
class Shard:
    """Vectors ``[start, stop)`` run by harness process ``index``."""

    index: int
    start: int
    stop: int
    assertions: bool

    @property
    def size(self) -> int:
        return self.stop - self.start


def resolve_jobs(jobs: int) -> int:
    """``jobs``, or the CPU cores this process may use when 0."""
    if jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _even(start: int, stop: int, parts: int) -> list[tuple[int, int]]:
    bounds = [start + (stop - start) * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def plan(n: int, jobs: int, bulk_no_assert: bool = True, min_shard: int = 2) -> list[Shard]:
    """Disjoint ordered slices of ``n`` vectors for ``jobs`` processes (see the module doc).

    Every shard gets at least ``min_shard`` vectors (the harness' throughput burst needs 2).
    With bulk ``--no-assert`` shards there are up to ``jobs + 1`` shards for ``jobs``
    processes (:func:`run_local` runs at most ``jobs`` at once).
    """
    if n < 1:
        raise ConfigError(f"nothing to simulate: {n} vectors")
    jobs = max(1, min(resolve_jobs(jobs), n // min_shard))
    if jobs == 1:
        return [Shard(0, 0, n, True)]
    if bulk_no_assert and n > ASSERT_SHARD_VECTORS:
        # The asserting shard first, then one bulk shard per process: the process that ran
        # the asserting shard takes the last bulk shard after it (about even loads).
        first = ASSERT_SHARD_VECTORS
        bulk = min(jobs, (n - first) // min_shard)
        if bulk == 0:
            return [Shard(0, 0, n, True)]
        rest = _even(first, n, bulk)
        return [Shard(0, 0, first, True)] + [
            Shard(k + 1, a, b, False) for k, (a, b) in enumerate(rest) if b > a
        ]
    return [Shard(k, a, b, True) for k, (a, b) in enumerate(_even(0, n, jobs))]


def merge(shards: Sequence[Shard], results: Sequence[HarnessResult]) -> HarnessResult:
    """One result from the shards' results, in order (see the module doc)."""
    parts, deadlocked = [], None
    for shard, r in zip(shards, results, strict=True):
        parts.append(r.actual)
        if r.deadlock and deadlocked is None:
            deadlocked = r
        if len(r.actual) < shard.size:
            break  # later shards' vectors would be misaligned
    cpfs = {r.cycles_per_frame for r in results if r.cycles_per_frame is not None}
    if len(cpfs) > 1:
        raise ShardDisagreementError(
            "shards measured different steady-state cycles per frame: "
            + ", ".join(
                f"shard {s.index}: {r.cycles_per_frame}"
                for s, r in zip(shards, results, strict=True)
            )
        )
    first = results[0]
    return HarnessResult(
        actual=np.concatenate(parts) if parts else first.actual,
        latency_cycles=first.latency_cycles,
        cycles_per_frame=first.cycles_per_frame,
        sim_cycles=sum(r.sim_cycles for r in results),
        deadlock=deadlocked is not None,
        deadlock_phase=deadlocked.deadlock_phase if deadlocked is not None else "",
        extra_beats=sum(r.extra_beats for r in results),
        beats_received=sum(r.beats_received for r in results),
        wall_s=max(r.wall_s for r in results),
        streams=deadlocked.streams if deadlocked is not None else (),
    )


#: Wall-clock seconds per vector a harness run may take on top of ``RunSpec.timeout_s``. The
#: bench's stall limit catches a deadlock once the run is going; the wall-clock limit only has
#: to catch a hang at time 0, so it must not cut a long healthy run: a flat 900 s stopped a
#: 495,820-vector shard on the loaded 2-core machine (a million vectors take 13 minutes on two
#: idle cores). 20 ms is 16x the slowest per-vector time measured (the default detector).
RUN_S_PER_VECTOR = 0.02


def run_limit_s(spec: RunSpec, vectors: int) -> float:
    """The wall-clock limit of one harness run of ``vectors`` vectors."""
    return spec.timeout_s + RUN_S_PER_VECTOR * vectors


@dataclass(frozen=True)
class RunSpec:
    """What every shard shares: streams, bench knobs (as :func:`sim.harness.run_harness`)."""

    in_stream: StreamSpec
    out_stream: StreamSpec
    n_out_elems: int
    seed: int
    source_pause_prob: float
    sink_pause_prob: float
    n_burst: int
    stall_limit_cycles: int
    timeout_s: float
    x_seed: int | None = None


def run_local(
    binaries: dict[bool, Path],
    mem_dir: Path,
    inputs: np.ndarray,
    shards: Sequence[Shard],
    spec: RunSpec,
    run_dir: Path,
    progress: bool = False,
    workers: int = 0,
) -> list[HarnessResult]:
    """Run the shards as parallel harness processes here (``binaries[assertions]``), at most
    ``workers`` at once (0: one per shard)."""

    def one(shard: Shard) -> HarnessResult:
        return run_harness(
            binaries[shard.assertions],
            mem_dir,
            inputs[shard.start : shard.stop],
            spec.in_stream,
            spec.out_stream,
            spec.n_out_elems,
            run_dir=Path(run_dir) if len(shards) == 1 else Path(run_dir) / f"shard{shard.index}",
            seed=spec.seed + shard.index,
            source_pause_prob=spec.source_pause_prob,
            sink_pause_prob=spec.sink_pause_prob,
            n_burst=spec.n_burst,
            stall_limit_cycles=spec.stall_limit_cycles,
            timeout_s=run_limit_s(spec, shard.size),
            progress=progress and len(shards) == 1,
            x_seed=None if spec.x_seed is None else spec.x_seed + shard.index,
        )

    if len(shards) == 1:
        return [one(shards[0])]
    pool = ThreadPoolExecutor(max_workers=workers or len(shards))
    try:
        futures = [pool.submit(one, s) for s in shards]
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C or SIGTERM reaches this thread only: end the harness processes the worker
        # threads wait on (each in its own process group), then let the threads return.
        pool.shutdown(wait=False, cancel_futures=True)
        paths = {str(b) for b in binaries.values()}
        _terminate_harnesses(paths | {str(Path(b).resolve()) for b in paths})
        raise
    finally:
        pool.shutdown(wait=True)


def _terminate_harnesses(executables: set[str], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, to the process group of every child running one of these."""
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    import psutil  # noqa: PLC0415 - a finn-plus dependency, pinned

    procs = []
    for child in psutil.Process().children():
        try:
            if child.cmdline()[:1] and child.cmdline()[0] in executables:
                procs.append(child)
        except psutil.Error:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while sig is signal.SIGTERM and time.monotonic() < deadline:
            if not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs):
                return
            time.sleep(0.05)


def _shard_args(shard: Shard, spec: RunSpec) -> list[str]:
    """The harness' command-line arguments of one shard (sim/harness/qphy_harness.cpp)."""
    args = [
        "in=inputs.bin",
        "out=outputs.bin",
        "results=results.json",
        f"n_frames={shard.size}",
        f"in_bytes={spec.in_stream.beat_bytes}",
        f"in_beats={spec.in_stream.beats_per_frame}",
        f"out_bytes={spec.out_stream.beat_bytes}",
        f"out_beats={spec.out_stream.beats_per_frame}",
        f"seed={spec.seed + shard.index}",
        f"src_pause={float(spec.source_pause_prob)!r}",
        f"sink_pause={float(spec.sink_pause_prob)!r}",
        f"n_burst={int(spec.n_burst)}",
        f"stall_limit={int(spec.stall_limit_cycles)}",
        "progress=0",
    ]
    if spec.x_seed is not None:
        x = (spec.x_seed + shard.index) % 2_000_000_000 + 1
        args += [f"+verilator+seed+{x}", "+verilator+rand+reset+2"]
    return args


def _ray_shard(exe: bytes, mem: dict[str, bytes], inputs: bytes, args: list[str], timeout_s):
    """A Ray task: run one shard in a scratch directory; (rc, results.json, outputs, stderr)."""
    import signal  # noqa: PLC0415 - the task imports nothing at module level on the worker
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="qphy-shard-") as tmp:
        root = Path(tmp)
        (root / "mem").mkdir()
        for name, data in mem.items():
            (root / "mem" / name).write_bytes(data)
        (root / "Vtop").write_bytes(exe)
        (root / "Vtop").chmod(0o755)
        (root / "inputs.bin").write_bytes(inputs)
        proc = subprocess.Popen(
            [str(root / "Vtop"), *args],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:  # reported by the driver as a named HarnessTimeout
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, "", b"", f"no result within its {timeout_s:.0f} s wall-clock limit"
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        res = root / "results.json"
        out = root / "outputs.bin"
        return (
            proc.returncode,
            res.read_text() if res.is_file() else "",
            out.read_bytes() if out.is_file() else b"",
            err.decode(errors="replace")[-2000:],
        )


def _result(shard: Shard, spec: RunSpec, rc: int, res: str, out: bytes, err: str):
    import json  # noqa: PLC0415

    if rc is None:
        raise HarnessTimeout(f"shard {shard.index} on Ray ({shard.size} vectors): {err}")
    if rc != 0 or not res:
        raise HarnessRunError(f"shard {shard.index} on Ray: the harness exited {rc} ({err})")
    out_bytes = np.frombuffer(out, dtype=np.uint8)
    return result_from_json(
        json.loads(res), out_bytes, spec.out_stream, spec.n_out_elems, shard.size, 0.0
    )


def run_on_ray(
    address: str,
    binaries: dict[bool, Path],
    mem_dir: Path,
    inputs: np.ndarray,
    shards: Sequence[Shard],
    spec: RunSpec,
    init: Callable | None = None,
) -> list[HarnessResult]:
    """Run the shards as Ray tasks on the cluster at ``address`` (``local``: a fresh local
    instance). The executable and memory files go to the object store once."""
    import time  # noqa: PLC0415

    try:
        import ray  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("--ray needs the ray package (pinned in requirements.lock)") from exc
    started = not ray.is_initialized()
    if started:
        (init or ray.init)(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_shard)
    exes = {a: ray.put(Path(p).read_bytes()) for a, p in binaries.items()}
    mem = ray.put({f.name: f.read_bytes() for f in sorted(Path(mem_dir).iterdir()) if f.is_file()})
    t0 = time.perf_counter()
    refs = [
        task.remote(
            exes[s.assertions],
            mem,
            pack_beats(inputs[s.start : s.stop], spec.in_stream).tobytes(),
            _shard_args(s, spec),
            run_limit_s(spec, s.size),
        )
        for s in shards
    ]
    # The tasks time themselves out; this limit also covers a task that never got a worker.
    limit = max(run_limit_s(spec, s.size) for s in shards) + 60
    try:
        outs = ray.get(refs, timeout=limit)
    except ray.exceptions.GetTimeoutError as exc:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise HarnessTimeout(
            f"the Ray shards gave no result within {limit:.0f} s (is the cluster busy?)"
        ) from exc
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:  # an instance (or connection) of our own: leave nothing running
            ray.shutdown()
    wall = time.perf_counter() - t0
    results = [_result(s, spec, *o) for s, o in zip(shards, outs, strict=True)]
    return [_with_wall(r, wall) for r in results]


def _with_wall(r: HarnessResult, wall_s: float) -> HarnessResult:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(r, wall_s=wall_s)


def run_sharded(
    binaries: dict[bool, Path],
    mem_dir: Path,
    inputs: np.ndarray,
    spec: RunSpec,
    run_dir: Path,
    *,
    jobs: int = 0,
    bulk_no_assert: bool = True,
    ray_address: str = "",
    progress: bool = False,
) -> tuple[HarnessResult, list[dict]]:
    """Plan, run (here or on Ray) and merge; returns the merged result and one record per
    shard (slice, assertions, figures). Without a ``--no-assert`` build in ``binaries`` every
    shard asserts."""
    shards = plan(len(inputs), jobs, bulk_no_assert and False in binaries)
    if ray_address:
        results = run_on_ray(ray_address, binaries, mem_dir, inputs, shards, spec)
    else:
        workers = resolve_jobs(jobs)
        results = run_local(binaries, mem_dir, inputs, shards, spec, run_dir, progress, workers)
    records = [
        {
            "index": s.index,
            "vectors": [s.start, s.stop],
            "assertions": s.assertions,
            "latency_cycles": r.latency_cycles,
            "cycles_per_frame": r.cycles_per_frame,
            "deadlock": r.deadlock,
            "sim_cycles": r.sim_cycles,
            "wall_s": round(r.wall_s, 3),
        }
        for s, r in zip(shards, results, strict=True)
    ]
    return merge(shards, results), records
