"""The ``qphy`` command line: train, evaluate, export (and, with the hw/sim stages, build).

Every user error (a PipelineError) becomes one line on stderr and the error's exit code; argparse
usage errors exit 2 as well. Tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from qphy.errors import ConfigError, PipelineError
from qphy.variants import parse_bits

log = logging.getLogger("qphy")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def _bits_or_float(text: str):
    return None if text == "float" else parse_bits(text)


def _quant_config(args: argparse.Namespace, bits):
    from quant.config import QuantConfig

    overrides = {}
    if getattr(args, "float_steps", None) is not None:
        overrides["float_steps"] = args.float_steps
    if getattr(args, "qat_steps", None) is not None:
        overrides["qat_steps"] = args.qat_steps
    if getattr(args, "bits_per_snr", None) is not None:
        overrides["eval_bits_per_snr"] = args.bits_per_snr
    return QuantConfig(bits=bits, channel=args.channel, **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from quant.pipeline import load_or_train

    cfg = _quant_config(args, args.bits)
    load_or_train(cfg, args.checkpoint_dir, retrain=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from quant.pipeline import evaluate_detector

    cfg = _quant_config(args, args.bits)
    res = evaluate_detector(cfg, Path(args.out), args.checkpoint_dir)
    _print_ber(res)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quant.pipeline import export_detector

    cfg = _quant_config(args, args.bits)
    rep = export_detector(cfg, Path(args.out), args.vectors, args.checkpoint_dir)
    print(
        f"exported {rep['variant']} to {args.out}: QONNX == Brevitas on {rep['vectors_checked']}"
        f" vectors ({rep['saturating_vectors']} saturating), "
        f"{len(rep['activation_quantizers_checked'])} activation + "
        f"{rep['weight_quantizers_checked']} weight quantizers integer-exact"
    )
    return 0


def _hw_sim_configs(args: argparse.Namespace):
    from hw.config import FifoSizing, FoldingPreference, HwBuildConfig
    from sim.config import SimConfig

    hw = {"fpga_part": args.fpga_part, "clock_mhz": args.clock_mhz}
    if args.target_cycles is not None:
        hw["target_cycles"] = args.target_cycles
    if args.target_latency_cycles is not None:
        hw["target_latency_cycles"] = args.target_latency_cycles
    hw["folding_preference"] = FoldingPreference(args.folding_preference)
    hw["fifo_sizing"] = FifoSizing(args.fifo_sizing)
    sim = {"n_vectors": args.vectors, "budget_us": args.budget_us}
    return HwBuildConfig(**hw), SimConfig(**sim)


def _print_verdict(rep: dict, out: Path) -> None:
    ok = rep["bit_exact"] and rep["within_budget"]
    res = rep["estimated_resources"]
    print(
        f"{rep['variant']}: {'PASS' if ok else 'FAIL'} — "
        f"{'bit-exact' if rep['bit_exact'] else str(rep['mismatches']) + ' mismatching'} on "
        f"{rep['vectors_checked']} vectors; latency {rep['latency_cycles']} cycles = "
        f"{rep['latency_us']:.3f} us at {rep['clock_mhz']:g} MHz (budget {rep['budget_us']:g} us); "
        f"{rep['cycles_per_frame']} cycles/frame = "
        f"{rep['throughput_vectors_per_s'] / 1e6:.2f} M vectors/s; {rep['fpga_part']}: "
        f"LUT {res['LUT']}, BRAM_18K {res['BRAM_18K']}, URAM {res['URAM']}, DSP {res['DSP']}; "
        f"report {out / 'report.json'}"
    )


def cmd_build(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from sim.verdict import build_and_verify, build_user_onnx

    hw_cfg, sim_cfg = _hw_sim_configs(args)
    out = Path(args.out)
    if args.target == "onnx":
        if args.path is None:
            raise ConfigError("qphy build onnx needs the path of a QONNX file")
        rep = build_user_onnx(Path(args.path), out, hw_cfg, sim_cfg)
        _print_verdict(rep, out)
        return 0
    if args.path is not None:
        raise ConfigError(f"unexpected argument '{args.path}' for the detector")
    from quant.pipeline import export_detector

    cfg = _quant_config(args, args.bits)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The verdict publishes out/ atomically (replacing it), so the export is made beside it and
    # moved in afterwards, also when the verdict fails (the report is written before it raises).
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        export_detector(cfg, staging / "export", args.vectors, args.checkpoint_dir)
        try:
            rep = build_and_verify(staging / "export", out, hw_cfg, sim_cfg)
        finally:
            if out.is_dir():
                shutil.move(str(staging / "export"), str(out / "export"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_verdict(rep, out)
    return 0


def _print_ber(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BER, {res['bits_simulated_per_snr']} bits per SNR ({res['channel']})")
    table.add_column("SNR dB", justify="right")
    for name in res["ber"]:
        table.add_column(name, justify="right")
    for i, snr in enumerate(res["snr_db"]):
        table.add_row(f"{snr:g}", *(f"{res['ber'][n][i]:.2e}" for n in res["ber"]))
    at = res.get("snr_db_at_ber_1e-3", {})
    table.add_row("@1e-3", *(f"{at[n]:.2f} dB" if at.get(n) else "-" for n in res["ber"]))
    Console().print(table)


def build_parser() -> argparse.ArgumentParser:
    from hw.config import FifoSizing, FoldingPreference

    p = _Parser(prog="qphy", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, allow_float: bool = False) -> None:
        sp.add_argument("target", choices=["detector"], help="what to work on")
        sp.add_argument(
            "--bits",
            default=parse_bits("w4a4"),
            type=_bits_or_float if allow_float else parse_bits,
            help="w<W>a<A> (2..8 bits each)" + (" or float" if allow_float else ""),
        )
        sp.add_argument("--channel", default="fixed", choices=["fixed", "iid"])
        sp.add_argument(
            "--checkpoint-dir",
            type=Path,
            default=None,
            help="where checkpoints are read/written (default: the shipped ones)",
        )

    sp = sub.add_parser("train", help="train float or QAT FullyCon and save the checkpoint")
    common(sp, allow_float=True)
    sp.add_argument("--float-steps", type=int)
    sp.add_argument("--qat-steps", type=int)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="BER vs SNR of float, QAT, ZF, MMSE and ML")
    common(sp)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--bits-per-snr", type=int)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("export", help="verified QONNX export with golden I/O")
    common(sp)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--vectors", type=int, default=2000, help="golden vectors (>= 1000)")
    sp.set_defaults(func=cmd_export)
    sp = sub.add_parser("build", help="export, FINN build, RTL simulation and verdict")
    sp.add_argument("target", choices=["detector", "onnx"], help="the detector or a QONNX file")
    sp.add_argument("path", nargs="?", default=None, help="QONNX file (for `build onnx`)")
    sp.add_argument("--bits", default=parse_bits("w4a4"), type=parse_bits)
    sp.add_argument("--channel", default="fixed", choices=["fixed", "iid"])
    sp.add_argument("--checkpoint-dir", type=Path, default=None)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--vectors", type=int, default=10_000, help="vectors checked in RTL")
    sp.add_argument("--budget-us", type=float, default=1000.0, help="latency budget (us)")
    sp.add_argument("--clock-mhz", type=float, default=200.0)
    sp.add_argument("--fpga-part", default="xczu3eg-sbva484-1-e")
    sp.add_argument(
        "--target-cycles",
        type=int,
        default=None,
        help="folding target: cycles per frame of the slowest layer",
    )
    sp.add_argument(
        "--target-latency-cycles",
        type=int,
        default=None,
        help="folding target: analytic latency in cycles",
    )
    sp.add_argument(
        "--folding-preference",
        default="resources",
        choices=[p.value for p in FoldingPreference],
        help="tie-break among foldings that meet the target",
    )
    sp.add_argument("--fifo-sizing", default="frame", choices=[f.value for f in FifoSizing])
    sp.set_defaults(func=cmd_build)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Brevitas warns at import about an optional CUDA kernel package it does not need here.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        for noisy in ("brevitas", "torch", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return args.func(args)
    except PipelineError as exc:
        print(f"qphy: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("qphy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
