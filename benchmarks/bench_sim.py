"""Benchmark: the compiled Verilator harness (sim/harness.py) against the cocotb bench.

Not a test. Runs the same vectors through both benches on one built design and prints
vectors/s and cycles/s of each and their ratio; the harness' outputs are the cocotb bench's
expected integers, so the cocotb run also proves that both benches agree bit for bit.

    .venv/bin/python benchmarks/bench_sim.py --build-dir build/fullycon_w4a4 \\
        --cocotb-vectors 2000 --harness-vectors 1000000

Without --build-dir it first runs ``qphy build detector --bits w4a4`` into --work. Build
products go under --work (default /tmp/qphy_bench_sim), never into the source tree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qphy.contracts import Manifest, StreamSpec  # noqa: E402
from qphy.variants import int_range  # noqa: E402
from sim.harness import run_harness  # noqa: E402
from sim.harness_build import build_harness  # noqa: E402
from sim.rtl_sources import prepare_sources  # noqa: E402


def random_inputs(stream: StreamSpec, n: int, seed: int) -> np.ndarray:
    """Uniform integers over the input stream's whole range (padding elements excluded)."""
    lo, hi = int_range(stream.elem_bits, stream.signed, False)
    return np.random.default_rng(seed).integers(lo, hi + 1, (n, stream.elems_per_frame))


def run_cocotb(rtl_dir, manifest, design, inputs, expected, work: Path, args) -> dict:
    from sim.config import Bench, SimConfig  # noqa: PLC0415 - cocotb only here
    from sim.verdict import run_cocotb as run_bench  # noqa: PLC0415
    from sim.verilator import build  # noqa: PLC0415

    t0 = time.perf_counter()
    obj = work / "cocotb_obj"
    if not (obj / design.top).is_file():
        build(design.sources, design.top, obj, 1800)
    build_s = time.perf_counter() - t0
    run = work / "cocotb_run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cfg = SimConfig(
        seed=args.seed,
        source_pause_prob=args.pause,
        sink_pause_prob=args.pause,
        n_burst=args.n_burst,
        sim_timeout_s=3600,
        bench=Bench.COCOTB,
    )
    t0 = time.perf_counter()
    res, _ = run_bench(manifest, obj, run, inputs, expected, cfg, rtl_dir / "mem")
    return {**res, "wall_s": time.perf_counter() - t0, "build_s": build_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, help="a `qphy build` output (holds hw/rtl)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qphy_bench_sim"))
    ap.add_argument("--cocotb-vectors", type=int, default=2000)
    ap.add_argument("--harness-vectors", type=int, default=1_000_000)
    ap.add_argument("--pause", type=float, default=0.3, help="source and sink pause probability")
    ap.add_argument("--n-burst", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-cocotb", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    build_dir = args.build_dir
    if build_dir is None:
        build_dir = args.work / "fullycon_w4a4"
        if not (build_dir / "hw" / "rtl" / "manifest.json").is_file():
            cmd = [sys.executable, "-m", "qphy.cli", "build", "detector", "--bits", "w4a4"]
            cmd += ["--out", str(build_dir), "--vectors", "100"]
            print("building:", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
    rtl_dir = build_dir / "hw" / "rtl"
    manifest = Manifest.read(rtl_dir / "manifest.json")
    design = prepare_sources(rtl_dir, args.work / "sim")
    n_out = manifest.output.elems_per_frame
    n_all = max(args.harness_vectors, args.cocotb_vectors)
    inputs = random_inputs(manifest.input, n_all, args.seed)

    cache = args.work / "harness_cache"
    hb = build_harness(design.sources, design.top, cache, threads=args.threads)
    print(f"harness build: {hb.build_s:.1f} s{' (cached)' if hb.cached else ''}", flush=True)
    t0 = time.perf_counter()
    h = run_harness(
        hb,
        rtl_dir / "mem",
        inputs[: args.harness_vectors],
        manifest.input,
        manifest.output,
        n_out,
        run_dir=args.work / "harness_run",
        seed=args.seed,
        source_pause_prob=args.pause,
        sink_pause_prob=args.pause,
        n_burst=args.n_burst,
        timeout_s=3600,
        progress=sys.stderr.isatty(),
    )
    total = time.perf_counter() - t0
    if h.deadlock or h.extra_beats or len(h.actual) != args.harness_vectors:
        sys.exit(f"harness run failed: deadlock={h.deadlock} extra_beats={h.extra_beats}")
    nv = args.harness_vectors
    print(
        f"harness: {nv} vectors, {h.sim_cycles} cycles in {h.wall_s:.1f} s "
        f"({total:.1f} s with packing): {nv / h.wall_s:,.0f} vectors/s, "
        f"{h.cycles_per_s:,.0f} cycles/s; latency {h.latency_cycles} cycles, "
        f"{h.cycles_per_frame} cycles/frame",
        flush=True,
    )
    if args.skip_cocotb:
        return
    nc = args.cocotb_vectors
    # The harness' outputs are the cocotb bench's expected integers: its verdict cross-checks.
    expected = h.actual[:nc] if nc <= nv else None
    if expected is None:
        sys.exit("--cocotb-vectors must not exceed --harness-vectors")
    c = run_cocotb(rtl_dir, manifest, design, inputs[:nc], expected, args.work, args)
    c_cps = c["sim_cycles"] / c["wall_s"]
    print(
        f"cocotb: {nc} vectors, {c['sim_cycles']} cycles in {c['wall_s']:.1f} s: "
        f"{nc / c['wall_s']:,.0f} vectors/s, {c_cps:,.0f} cycles/s; latency "
        f"{c['latency_cycles']} cycles, {c['cycles_per_frame']} cycles/frame; "
        f"mismatches vs harness {c['mismatches']}",
        flush=True,
    )
    print(
        f"ratio harness/cocotb: {h.cycles_per_s / c_cps:.1f}x cycles/s, "
        f"{(nv / h.wall_s) / (nc / c['wall_s']):.1f}x vectors/s; figures equal: "
        f"{c['latency_cycles'] == h.latency_cycles and c['cycles_per_frame'] == h.cycles_per_frame}"
    )


if __name__ == "__main__":
    main()
