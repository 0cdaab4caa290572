"""Benchmark: the folding search's latency-vs-DSP frontier across Zynq UltraScale+ parts.

Not a test, and not a verified result: the frontier is the search's own models (FINN's cycles
plus pipeline depths, the calibrated Yosys resource model of hw/synth_model.py); the chosen
points are what ``qphy build --optimize latency --fpga-part PART`` then verifies in RTL.
Writes ``pareto.json`` and ``pareto.png`` (latency cycles vs DSPs, one curve per part, the
chosen point marked) under --out.

    .venv/bin/python benchmarks/folding_pareto.py --model \\
        build/fullycon/hw/intermediate/09_specialize_layers.onnx --out /tmp/qphy_pareto

--model is a hw build's ``*_specialize_layers.onnx`` (the model the search folds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hw.config import Optimize  # noqa: E402
from hw.optimize import physics, search  # noqa: E402

PARTS = (
    "xczu3eg-sbva484-1-e",
    "xczu7ev-ffvc1156-2-e",
    "xczu9eg-ffvb1156-2-e",
    "xczu28dr-ffvg1517-2-e",
    "xczu48dr-ffvg1517-2-e",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=Path("/tmp/qphy_pareto"))
    ap.add_argument("--mode", default="latency", choices=[o.value for o in Optimize])
    ap.add_argument("--target-cycles", type=int, default=200)
    ap.add_argument("--clock-mhz", type=float, default=200.0)
    args = ap.parse_args()
    from qonnx.core.modelwrapper import ModelWrapper

    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for part in PARTS:
        _, res = search(
            ModelWrapper(str(args.model)), part, Optimize(args.mode), args.target_cycles
        )
        rec = res.to_json()
        rec["physics_at_chosen_rate"] = physics(
            res.macs_per_frame, part, res.model_cycles_per_frame
        )
        results[part] = rec
        print(
            f"{part}: model latency {res.model_latency_cycles} cycles = "
            f"{res.model_latency_cycles / args.clock_mhz:.2f} us, "
            f"{res.model_cycles_per_frame} cycles/frame, DSP {res.model_resources['DSP']:.0f}, "
            f"LUT {res.model_resources['LUT']:.0f}, FF {res.model_resources['FF']:.0f} "
            "(synth model)"
        )
    (args.out / "pareto.json").write_text(json.dumps(results, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for part, rec in results.items():
        pts = [p for p in rec["frontier"] if p["fits"]]
        ax.step(
            [p["DSP"] for p in pts],
            [p["model_latency_cycles"] for p in pts],
            where="post",
            label=part.split("-")[0],
        )
        ax.plot(rec["model_resources"]["DSP"], rec["model_latency_cycles"], "ko", ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("DSPs (FINN's model)")
    ax.set_ylabel("latency, cycles (search's model)")
    ax.set_title("folding frontier per part (dots: chosen within the margin)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "pareto.png", dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
