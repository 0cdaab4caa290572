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

TARGETS = ("detector", "csi-encoder")
#: Default latency budgets: the brief's 1 ms, and one OFDM symbol at 120 kHz for the encoder.
DETECTOR_BUDGET_US = 1000.0
CSI_BUDGET_US = 8.9
#: CSI-encoder build defaults (each overridable): a part with room for CsiNet+'s 2048 x 512
#: layer, latency-first folding without FIFOs. Measured in RTL simulation, these keep all three
#: CR 4 encoders within CSI_BUDGET_US (README, "CSI-feedback encoders").
CSI_BUILD_DEFAULTS = {
    "fpga_part": "xczu7ev-ffvc1156-2-e",
    "folding_preference": "latency",
    "fifo_sizing": "none",
}
#: Cycles-per-frame folding target per architecture (the input stream alone takes 1024 beats).
CSI_TARGET_CYCLES = {"csinetplus": 1444, "convcsinet": 1156, "convsqucsinet": 1156}


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


_CSI_ONLY = ("arch", "cr", "scenario", "codeword_bits")


def _csi_config(args: argparse.Namespace, bits):
    """CsiConfig from the options (only those given override the defaults)."""
    from quant.csi import CsiConfig

    kw = {k: getattr(args, k) for k in _CSI_ONLY if getattr(args, k, None) is not None}
    if getattr(args, "float_steps", None) is not None:
        kw["float_steps"] = args.float_steps
    if getattr(args, "qat_steps", None) is not None:
        kw["qat_steps"] = args.qat_steps
    return CsiConfig(bits=bits, **kw)


def _check_target_options(args: argparse.Namespace) -> None:
    """CSI options with the detector (or the detector's --channel with the CSI encoder) are
    mistakes worth a clear error rather than being ignored."""
    given = [k for k in _CSI_ONLY if getattr(args, k, None) is not None]
    if args.target != "csi-encoder" and given:
        opts = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"{opts}: for csi-encoder only, not the {args.target}")
    if args.target == "csi-encoder" and getattr(args, "channel", None) is not None:
        raise ConfigError("--channel applies to the detector; use --scenario for csi-encoder")
    if args.target == "detector" and getattr(args, "channel", None) is None:
        args.channel = "fixed"


def cmd_train(args: argparse.Namespace) -> int:
    from quant.pipeline import load_or_train

    if args.target == "csi-encoder":
        from quant.csi import train

        cfg = _csi_config(args, args.bits)
        _, meta = train(cfg, args.checkpoint_dir)
        print(f"{meta['variant']}: test NMSE {meta['test_nmse_db']:.2f} dB")
        return 0
    cfg = _quant_config(args, args.bits)
    load_or_train(cfg, args.checkpoint_dir, retrain=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from quant.pipeline import evaluate_detector

    if args.target == "csi-encoder":
        from quant.csi import evaluate, write_json

        res = evaluate(_csi_config(args, args.bits), args.checkpoint_dir)
        write_json(res, Path(args.out) / "nmse.json")
        print(
            f"{res['variant']}: NMSE float {res['nmse_db']['float']:.2f} dB, quantized "
            f"{res['nmse_db']['quant']:.2f} dB on {res['test_samples']} test samples"
        )
        return 0
    cfg = _quant_config(args, args.bits)
    res = evaluate_detector(cfg, Path(args.out), args.checkpoint_dir)
    _print_ber(res)
    return 0


def _export(args: argparse.Namespace, out: Path) -> dict:
    if args.target == "csi-encoder":
        from quant.csi import export

        return export(_csi_config(args, args.bits), out, args.vectors, args.checkpoint_dir)
    from quant.pipeline import export_detector

    cfg = _quant_config(args, args.bits)
    return export_detector(cfg, out, args.vectors, args.checkpoint_dir)


def cmd_export(args: argparse.Namespace) -> int:
    rep = _export(args, Path(args.out))
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

    defaults = {}
    if args.target == "csi-encoder":
        defaults = {
            **CSI_BUILD_DEFAULTS,
            "target_cycles": CSI_TARGET_CYCLES[args.arch or "csinetplus"],
        }
    hw = {"clock_mhz": args.clock_mhz}
    for key in ("fpga_part", "target_cycles", "target_latency_cycles"):
        value = getattr(args, key) if getattr(args, key) is not None else defaults.get(key)
        if value is not None:
            hw[key] = value
    for key, kind in (("folding_preference", FoldingPreference), ("fifo_sizing", FifoSizing)):
        value = getattr(args, key) or defaults.get(key)
        if value is not None:
            hw[key] = kind(value)
    budget = args.budget_us
    if budget is None:
        budget = CSI_BUDGET_US if args.target == "csi-encoder" else DETECTOR_BUDGET_US
    sim = {"n_vectors": args.vectors, "budget_us": budget}
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
        + (
            f"NMSE float {rep['nmse_db']['float']:.2f} dB, quantized "
            f"{rep['nmse_db']['quant']:.2f} dB, codeword {rep['codeword_bits']} bits x "
            f"{rep['codeword_size']}; "
            if "nmse_db" in rep
            else ""
        )
        + f"report {out / 'report.json'}"
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
        raise ConfigError(f"unexpected argument '{args.path}' for the {args.target}")
    extra = {}
    if args.target == "csi-encoder":
        from quant.csi import evaluate

        res = evaluate(_csi_config(args, args.bits), args.checkpoint_dir)
        extra = {
            "nmse_db": res["nmse_db"],
            "codeword_bits": res["codeword_bits"],
            "codeword_size": res["codeword_size"],
            "feedback_bits": res["feedback_bits"],
            "encoder_params": res["encoder_params"],
            "encoder_flops": res["encoder_flops"],
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    # The verdict publishes out/ atomically (replacing it), so the export is made beside it and
    # moved in afterwards, also when the verdict fails (the report is written before it raises).
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        _export(args, staging / "export")
        try:
            rep = build_and_verify(staging / "export", out, hw_cfg, sim_cfg)
        finally:
            if out.is_dir():
                shutil.move(str(staging / "export"), str(out / "export"))
                if extra:
                    _add_to_report(out / "report.json", extra)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_verdict({**rep, **extra}, out)
    return 0


def _add_to_report(path: Path, extra: dict) -> None:
    """Merge ``extra`` into a written report.json (atomically: temp file + rename)."""
    import json
    import os

    rep = json.loads(path.read_text())
    rep.update(extra)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rep, indent=1))
    os.replace(tmp, path)


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

    def csi_options(sp: argparse.ArgumentParser) -> None:
        from models.csinet import ARCHS, CODEWORD_SIZES

        sp.add_argument("--arch", choices=ARCHS, help="csi-encoder architecture")
        sp.add_argument("--cr", type=int, choices=sorted(CODEWORD_SIZES), help="compression")
        sp.add_argument("--scenario", choices=["indoor", "outdoor"], help="CSI data set")
        sp.add_argument("--codeword-bits", type=int, help="bits per codeword element (8)")

    def common(sp: argparse.ArgumentParser, allow_float: bool = False) -> None:
        sp.add_argument("target", choices=TARGETS, help="what to work on")
        sp.add_argument(
            "--bits",
            default=parse_bits("w4a4"),
            type=_bits_or_float if allow_float else parse_bits,
            help="w<W>a<A> (2..8 bits each)" + (" or float" if allow_float else ""),
        )
        sp.add_argument("--channel", default=None, choices=["fixed", "iid"])
        csi_options(sp)
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
    sp.add_argument(
        "target", choices=[*TARGETS, "onnx"], help="the detector, a CSI encoder or a QONNX file"
    )
    sp.add_argument("path", nargs="?", default=None, help="QONNX file (for `build onnx`)")
    sp.add_argument("--bits", default=parse_bits("w4a4"), type=parse_bits)
    sp.add_argument("--channel", default=None, choices=["fixed", "iid"])
    csi_options(sp)
    sp.add_argument("--checkpoint-dir", type=Path, default=None)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--vectors", type=int, default=None, help="vectors checked in RTL")
    sp.add_argument(
        "--budget-us",
        type=float,
        default=None,
        help=f"latency budget in us (detector {DETECTOR_BUDGET_US:g}, csi-encoder {CSI_BUDGET_US})",
    )
    sp.add_argument("--clock-mhz", type=float, default=200.0)
    sp.add_argument(
        "--fpga-part", default=None, help="detector: xczu3eg-sbva484-1-e, csi-encoder: xczu7ev"
    )
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
        default=None,
        choices=[p.value for p in FoldingPreference],
        help="tie-break among foldings that meet the target (detector: resources, "
        "csi-encoder: latency)",
    )
    sp.add_argument(
        "--fifo-sizing",
        default=None,
        choices=[f.value for f in FifoSizing],
        help="detector: frame, csi-encoder: none",
    )
    sp.set_defaults(func=cmd_build)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Brevitas warns at import about an optional CUDA kernel package it does not need here.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "target", None) in TARGETS:
            _check_target_options(args)
        if getattr(args, "vectors", 0) is None:
            args.vectors = 1000 if args.target == "csi-encoder" else 10_000
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
