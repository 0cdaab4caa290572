"""Calibration builds for the synthesized-resource model (hw/synth_model.py).

    python benchmarks/synth_calibration.py build --export EXPORT --out DIR NAME PART \
        [--target-cycles N] [--preference resources|latency] [--optimize latency] [--jobs J]
    python benchmarks/synth_calibration.py collect --out hw/synth_calibration.json DIR/NAME ... \
        [--held-out BUILD ...]
    python -m hw.synth_model fit           # refit hw/synth_model_coeffs.json from the data

``build``: the FINN build of an export (``qphy export detector --out EXPORT``) with one folding,
up to the stitched RTL (no Verilator: the calibration needs the netlists, not a verdict), then
the per-layer Yosys synthesis of it (bitstreams/yosys_layers.py) into ``DIR/NAME/hw``.
``collect``: every synthesized layer of the given builds as one calibration row: its unit kind
and parameters (hw.synth_model.unit_features, read from the build's final dataflow model) and
Yosys's counts (synth_report.json's ``resources_per_layer``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cmd_build(a: argparse.Namespace) -> int:
    from bitstreams.yosys_layers import synthesize_per_layer
    from hw.config import FoldingPreference, HwBuildConfig, Optimize
    from qphy.flow import hw_stage

    hw_dir = Path(a.out) / a.name / "hw"
    if not (hw_dir / "rtl").is_dir():
        cfg = HwBuildConfig(
            fpga_part=a.part,
            target_cycles=a.target_cycles,
            optimize=Optimize(a.optimize) if a.optimize else None,
            folding_preference=FoldingPreference(a.preference),
        )
        hw_stage(Path(a.export), hw_dir, cfg)
    rep = synthesize_per_layer(
        hw_dir, jobs=a.jobs, timeout_s=a.timeout_s, progress=lambda s: print(s, flush=True)
    )
    print(json.dumps(rep.get("resources") or rep.get("partial_resources")))
    return 0


def cmd_collect(a: argparse.Namespace) -> int:
    from hw.synth_model import collect_build

    rows = []
    for d in a.builds + a.held_out:
        rows += collect_build(Path(d), Path(d).name)
    data = {
        "what": "Yosys per-layer counts (qphy synth --tool yosys --per-layer, plain ABC, "
        "synth_xilinx -family xcup) of FINN units of qphy builds, with the unit parameters "
        "hw/synth_model.py's features are computed from",
        "refit": "python -m hw.synth_model fit",
        "held_out_builds": [Path(d).name for d in a.held_out],
        "rows": rows,
    }
    Path(a.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(rows)} rows -> {a.out}")
    return 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--export", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("name")
    b.add_argument("part")
    b.add_argument("--target-cycles", type=int, default=200)
    b.add_argument("--optimize", default=None)
    b.add_argument("--preference", default="resources", choices=["resources", "latency"])
    b.add_argument("--jobs", type=int, default=1)
    b.add_argument("--timeout-s", type=float, default=2400)
    b.set_defaults(func=cmd_build)
    c = sub.add_parser("collect")
    c.add_argument("--out", required=True)
    c.add_argument("builds", nargs="+")
    c.add_argument(
        "--held-out", nargs="*", default=[], help="synthesized builds that check the fit only"
    )
    c.set_defaults(func=cmd_collect)
    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    raise SystemExit(main())
