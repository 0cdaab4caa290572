"""qphy-board: run the deployed accelerator (board or RTL simulation), or pack a board directory.

    qphy-board run DIR [--backend board|sim] [--vectors N] [--out FILE]
    qphy-board pack OUT BITSTREAM_DIR --out BOARD_DIR

``run`` writes board_report.json (the verdict's keys plus the backend's figures); ``pack``
assembles what a user copies to the board. A user error (a PipelineError) is one line on
stderr and a non-zero exit, as with ``qphy``. Imports nothing beyond numpy and qphy's pure-Python
modules until a backend is chosen.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bitstreams.driver.files import BOARD_REPORT, pack_board_dir
from bitstreams.driver.run import BACKENDS, DriverConfig, run_driver
from qphy.errors import ConfigError, run_command

log = logging.getLogger("qphy-board")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"not an integer: {text!r}") from None
    if value < 1:
        raise ConfigError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qphy-board", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="check the golden vectors bit-exactly and measure")
    r.add_argument("dir", type=Path, help="a board directory (qphy-board pack) or a build OUT")
    r.add_argument("--backend", choices=BACKENDS, default="board")
    r.add_argument("--vectors", type=_positive_int, default=None, help="default: all of them")
    r.add_argument("--out", type=Path, default=None, help=f"default: DIR/{BOARD_REPORT}")
    r.add_argument("--latency-runs", type=_positive_int, default=1000)
    r.add_argument("--batch-vectors", type=_positive_int, default=65536)
    r.add_argument("--seconds", type=float, default=2.0, help="per throughput/power phase")
    r.add_argument("--budget-us", type=float, default=None, help="default: the verdict's")
    b = r.add_argument_group("board backend")
    b.add_argument("--bitstream", type=Path, default=None, help="default: the .bit in DIR")
    b.add_argument("--dma", default=None, help="AXI DMA name in the overlay (default: the one)")
    b.add_argument("--no-download", action="store_true", help="the overlay is already loaded")
    b.add_argument("--rails", default=None, help="comma-separated rails to sum (default: all)")
    s = r.add_argument_group("sim backend")
    s.add_argument("--harness-cache", type=Path, default=None, help="default: qphy's cache")
    s.add_argument("--mem-dir", type=Path, default=None, help="other memory files (faults)")
    r.set_defaults(func=_run)

    k = sub.add_parser("pack", help="assemble the directory to copy to the board")
    k.add_argument("out_dir", type=Path, help="a finished build (qphy build ... --out OUT)")
    k.add_argument("bitstream_dir", type=Path, help="qphy bitstream's output (.bit + .hwh)")
    k.add_argument("--out", type=Path, required=True, dest="board_dir")
    k.set_defaults(func=_pack)
    return p


def _run(args: argparse.Namespace) -> int:
    cfg = DriverConfig(
        n_vectors=args.vectors,
        latency_runs=args.latency_runs,
        batch_vectors=args.batch_vectors,
        seconds=args.seconds,
        budget_us=args.budget_us,
    )
    if args.backend == "board":
        options = {
            "bitstream": args.bitstream,
            "dma_name": args.dma,
            "download": not args.no_download,
            "rails": [x for x in args.rails.split(",") if x] if args.rails else None,
        }
    else:
        options = {"cache_dir": args.harness_cache, "mem_dir": args.mem_dir}
    _check_report_path(args.out)
    report = run_driver(args.dir, args.backend, cfg, args.out, **options)
    r = report.to_json()
    power = r["power"]
    print(
        f"{r['variant']} [{r['backend']}]: {r['vectors_checked']} vectors bit-exact; latency "
        f"{r['latency_us']} us ({r['latency_cycles']} cycles); {r['throughput_vectors_per_s']:.0f}"
        f" vectors/s; power "
        + (
            f"{power['idle_w']:.3f} W idle, {power['load_w']:.3f} W load, "
            f"{r['energy_per_inference_j']:.3g} J/inference"
            if power["idle_w"] is not None and r["energy_per_inference_j"] is not None
            else f"unavailable ({power['reason']})"
        )
    )
    print(f"report: {args.out or args.dir / BOARD_REPORT}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    written = pack_board_dir(args.out_dir, args.bitstream_dir, args.board_dir)
    print(json.dumps({"board_dir": str(args.board_dir), "files": written}, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("qphy-board", build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())


def _check_report_path(out: Path | None) -> None:
    """``--out FILE`` may replace only an earlier board report: never a file of the user's."""
    if out is None or not Path(out).exists():
        return
    try:
        data = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        data = None
    if not (isinstance(data, dict) and {"backend", "vectors_checked"} <= set(data)):
        raise ConfigError(f"--out {out}: exists and is not a qphy-board report; name a new file")
