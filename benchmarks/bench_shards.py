"""Benchmark: sharded verdicts (sim/shards.py): vectors/s per core and the scaling with N.

Not a test. On one finished build, runs the same vectors with 1, 2, ... N harness processes,
for the asserting build and the ``--no-assert`` build, side by side in one run, and prints per
configuration: wall seconds, vectors/s, CPU seconds of the harness processes, vectors per
CPU-second (the per-core rate, robust on a shared machine) and the speed-up over one process.
Every run's integers must equal the single-process run's (else it exits non-zero).

    .venv/bin/python benchmarks/bench_shards.py --build-dir build/fullycon_w4a4 \\
        --vectors 20000 --max-jobs 2

The projection for more vectors or cores is vectors / (per-core rate x cores): it assumes
perfect scaling over cores, which the printed speed-ups check on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qphy.contracts import Manifest  # noqa: E402
from sim.rtl_sources import prepare_sources  # noqa: E402
from sim.shards import RunSpec, merge, plan, run_local  # noqa: E402


def _child_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, required=True, help="a finished `qphy build`")
    ap.add_argument("--vectors", type=int, default=20_000)
    ap.add_argument("--max-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/qphy_bench_shards"))
    ap.add_argument("--compiler", default="g++", choices=["g++", "clang++", "auto"])
    ap.add_argument("--project", type=int, default=1_000_000, help="vectors to project for")
    args = ap.parse_args()

    from sim.cache import default_harness_cache  # noqa: PLC0415
    from sim.harness_build import build_harness  # noqa: PLC0415

    out = args.build_dir
    manifest = Manifest.read(out / "hw" / "rtl" / Manifest.FILE)
    design = prepare_sources(out / "hw" / "rtl", args.work / "sim")
    binaries = {}
    for assertions in (True, False):
        b = build_harness(
            design.sources, design.top, default_harness_cache(), assertions=assertions,
            compiler=args.compiler,
        )  # fmt: skip
        binaries[assertions] = b.binary
        print(f"build assertions={assertions}: {b.build_s:.1f} s (cached: {b.cached})")
    x = np.load(out / "sim" / "vectors_in.npy")
    expected = np.load(out / "sim" / "vectors_expected.npy")
    reps = -(-args.vectors // len(x))
    x = np.concatenate([x] * reps)[: args.vectors]
    expected = np.concatenate([expected] * reps)[: args.vectors]
    spec = RunSpec(
        manifest.input, manifest.output, expected.shape[1], 1, 0.3, 0.3, 32, 100_000, 3600
    )
    print(f"{args.vectors} vectors, load average {os.getloadavg()[0]:.2f} at start")
    print("asserting  jobs   wall_s  vectors/s  cpu_s  vectors/cpu_s  speed-up  bit-exact")
    base: dict[bool, float] = {}
    rates = {}
    for assertions in (True, False):
        for jobs in range(1, args.max_jobs + 1):
            shards = [
                s.__class__(s.index, s.start, s.stop, assertions)
                for s in plan(args.vectors, jobs, bulk_no_assert=False)
            ]
            cpu0, t0 = _child_cpu_s(), time.perf_counter()
            res = merge(shards, run_local(binaries, out / "hw" / "rtl" / "mem", x, shards, spec,
                                          args.work / f"run_{assertions}_{jobs}"))  # fmt: skip
            wall, cpu = time.perf_counter() - t0, _child_cpu_s() - cpu0
            exact = np.array_equal(res.actual, expected)
            base.setdefault(assertions, wall)
            rates[(assertions, jobs)] = args.vectors / cpu
            print(
                f"{assertions!s:9}  {jobs:4}  {wall:7.1f}  {args.vectors / wall:9.0f}  "
                f"{cpu:5.1f}  {args.vectors / cpu:13.0f}  {base[assertions] / wall:8.2f}  {exact}"
            )
            if not exact:
                return 1
    per_core = rates[(False, 1)]
    print(
        f"projection (per-core rate x cores, --no-assert): {args.project} vectors "
        + ", ".join(
            f"{c} cores {args.project / (per_core * c) / 60:.1f} min" for c in (1, 2, 16, 64)
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
