"""The ``qphy`` command line: train, evaluate, export and build any registered target.

Every user error (a PipelineError) becomes one line on stderr and the error's exit code; argparse
usage errors exit 2 as well. Tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from qphy import defaults, targets
from qphy.contracts import Report
from qphy.errors import ConfigError, run_command
from qphy.targets import HwDefaults, Option
from qphy.variants import parse_bits

log = logging.getLogger("qphy")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def _bits_or_float(text: str):
    return None if text == "float" else parse_bits(text)


def _all_options() -> dict[str, Option]:
    """Every registered target's own options, by flag (targets may share one, e.g. --qat-steps)."""
    found: dict[str, Option] = {}
    for name in targets.target_names():
        for opt in targets.get(name).options:
            found.setdefault(opt.flag, opt)
    return found


def _target_config(args: argparse.Namespace, bits):
    """(target, config) from the options; options of another target are a ConfigError."""
    target = targets.get(args.target)
    own = {o.flag for o in target.options}
    given = {f: o for f, o in _all_options().items() if getattr(args, o.dest, None) is not None}
    foreign = sorted(f for f in given if f not in own)
    if foreign:
        owners = sorted(
            n
            for n in targets.target_names()
            if {o.flag for o in targets.get(n).options} & set(foreign)
        )
        raise ConfigError(
            f"{', '.join(foreign)}: for {' / '.join(owners)} only, not the {target.name}"
        )
    values = {}
    for opt in target.options:
        value = getattr(args, opt.dest, None)
        if value is None:
            continue
        if opt.choices is not None and value not in opt.choices:
            allowed = ", ".join(str(c) for c in opt.choices)
            raise ConfigError(
                f"argument {opt.flag}: invalid choice: {value!r} (choose from {allowed})"
            )
        values[opt.dest] = value
    return target, target.config(bits, **values)


def cmd_train(args: argparse.Namespace) -> int:
    target, cfg = _target_config(args, args.bits)
    print(target.train(cfg, args.checkpoint_dir))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    target, cfg = _target_config(args, args.bits)
    print(target.evaluate(cfg, Path(args.out), args.checkpoint_dir))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from qphy.flow import export_stage

    target, cfg = _target_config(args, args.bits)
    rep = export_stage(target, cfg, Path(args.out), args.vectors, args.checkpoint_dir)
    print(
        f"exported {rep['variant']} to {args.out}: QONNX == Brevitas on {rep['vectors_checked']}"
        f" vectors ({rep['saturating_vectors']} saturating), "
        f"{len(rep['activation_quantizers_checked'])} activation + "
        f"{rep['weight_quantizers_checked']} weight quantizers integer-exact"
    )
    return 0


def _hw_sim_configs(args: argparse.Namespace, dflt: HwDefaults):
    """HwBuildConfig and SimConfig: the options given, else the target's defaults."""
    from hw.config import FifoSizing, FoldingPreference, HwBuildConfig
    from sim.config import Bench, SimConfig

    def pick(name: str):
        value = getattr(args, name)
        return value if value is not None else getattr(dflt, name)

    hw = HwBuildConfig(
        fpga_part=pick("fpga_part"),
        clock_mhz=args.clock_mhz,
        target_cycles=pick("target_cycles"),
        target_latency_cycles=args.target_latency_cycles,
        folding_preference=FoldingPreference(pick("folding_preference")),
        fifo_sizing=FifoSizing(pick("fifo_sizing")),
    )
    n = args.vectors if args.vectors is not None else dflt.vectors
    sim = SimConfig(
        n_vectors=n,
        budget_us=pick("budget_us"),
        bench=Bench(args.bench),
        x_random=args.x_random,
        progress=n >= 20_000,
        jobs=args.jobs,
        ray_address=args.ray or "",
        compiler=args.compiler,
    )
    return hw, sim


def _print_verdict(rep: Report, out: Path, target: targets.Target | None = None) -> None:
    res = rep.estimated_resources
    own = target.verdict_figures(rep.extras) if target is not None else ""
    print(
        f"{rep.variant}: {'PASS' if rep.passed else 'FAIL'} — "
        f"{'bit-exact' if rep.bit_exact else str(rep.mismatches) + ' mismatching'} on "
        f"{rep.vectors_checked} vectors; latency {rep.latency_cycles} cycles = "
        f"{rep.latency_us:.3f} us at {rep.clock_mhz:g} MHz (budget {rep.budget_us:g} us); "
        f"{rep.cycles_per_frame} cycles/frame = "
        f"{rep.throughput_vectors_per_s / 1e6:.2f} M vectors/s; {rep.fpga_part}: "
        f"LUT {res['LUT']}, BRAM_18K {res['BRAM_18K']}, URAM {res['URAM']}, DSP {res['DSP']}; "
        + (f"{own}; " if own else "")
        + f"report {out / Report.FILE}"
    )
    fit = rep.extras.get("estimated_fit") or {}
    if fit.get("fits") is False:
        over = ", ".join(
            f"{k} {res[k]:,} > {fit['capacity'][k]:,} ({100 * fit['utilisation'][k]:.0f} %)"
            for k in fit["over"]
        )
        print(
            f"WARNING: FINN's estimate does not fit {rep.fpga_part}: {over}; choose a larger "
            "--fpga-part, a slower folding (--target-cycles) or narrower activations",
            file=sys.stderr,
        )


def cmd_build(args: argparse.Namespace) -> int:
    from qphy import flow

    out = Path(args.out)
    if args.target == "onnx":
        if args.path is None:
            raise ConfigError("qphy build onnx needs the path of a QONNX file")
        hw_cfg, sim_cfg = _hw_sim_configs(args, HwDefaults())
        rep = flow.build_onnx(Path(args.path), out, hw_cfg, sim_cfg)
        target = None
    else:
        if args.path is not None:
            raise ConfigError(f"unexpected argument '{args.path}' for the {args.target}")
        target, cfg = _target_config(args, args.bits)
        hw_cfg, sim_cfg = _hw_sim_configs(args, target.hw_defaults(cfg))
        rep = flow.build_target(target, cfg, out, hw_cfg, sim_cfg, args.checkpoint_dir)
    _print_verdict(rep, out, target)
    return 0


def cmd_bitstream(args: argparse.Namespace) -> int:
    """``qphy bitstream`` / ``qphy synth``: the Vivado flows on a finished build (needs Vivado)."""
    from bitstreams.build import build_bitstream

    mode = "ooc" if args.command == "synth" else "bitstream"
    res = build_bitstream(Path(args.build_dir), args.board, Path(args.out), mode, saif=args.saif)
    rep = res.get("reports", {})
    timing = rep.get("timing", {})
    print(
        f"{mode} for {args.board}: {args.out}; WNS {timing.get('wns_ns')} ns, "
        f"Fmax {timing.get('fmax_mhz')} MHz; utilization {rep.get('utilization')}; "
        f"power {rep.get('power')}"
    )
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """``qphy experiment NAME``: a resumable study (experiments/studies)."""
    from experiments.registry import run_experiment

    overrides = {}
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set wants KEY=VALUE, got '{item}'")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    run_experiment(args.name, Path(args.out), args.grid, overrides, ray_address=args.ray)
    print(f"experiment {args.name} ({args.grid} grid): results in {args.out}")
    return 0


def _target_options(sp: argparse.ArgumentParser) -> None:
    """Every target's options; targets may share a flag with other choices (each target checks
    its own in :func:`_target_config`)."""
    helps: dict[str, list[str]] = {}
    for name in targets.target_names():
        for opt in targets.get(name).options:
            choices = f" {{{','.join(str(c) for c in opt.choices)}}}" if opt.choices else ""
            helps.setdefault(opt.flag, []).append(f"{name}: {opt.help}{choices}")
    for flag, opt in _all_options().items():
        sp.add_argument(flag, dest=opt.dest, type=opt.type, help="; ".join(helps[flag]))


def build_parser() -> argparse.ArgumentParser:
    from hw.config import FifoSizing, FoldingPreference

    names = targets.target_names()
    p = _Parser(prog="qphy", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, allow_float: bool = False, onnx: bool = False):
        sp.add_argument("target", choices=[*names, "onnx"] if onnx else names)
        if onnx:
            sp.add_argument("path", nargs="?", default=None, help="QONNX file (`build onnx`)")
        sp.add_argument(
            "--bits",
            default=parse_bits("w4a4"),
            type=_bits_or_float if allow_float else parse_bits,
            help="w<W>a<A> (2..8 bits each)" + (" or float" if allow_float else ""),
        )
        _target_options(sp)
        sp.add_argument(
            "--checkpoint-dir",
            type=Path,
            default=None,
            help="where checkpoints are read/written (default: the shipped ones)",
        )

    sp = sub.add_parser("train", help="train a float or QAT variant and save its checkpoint")
    common(sp, allow_float=True)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="quality of the variant (BER, NMSE) against baselines")
    common(sp)
    sp.add_argument("--out", required=True, type=Path)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("export", help="verified QONNX export with golden I/O")
    common(sp)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--vectors", type=int, default=defaults.EXPORT_VECTORS, help="golden vectors")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("build", help="export, FINN build, RTL simulation and verdict")
    common(sp, onnx=True)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--vectors", type=int, default=None, help="vectors checked in RTL")
    sp.add_argument("--budget-us", type=float, default=None, help="latency budget in us")
    sp.add_argument("--clock-mhz", type=float, default=defaults.CLOCK_MHZ)
    sp.add_argument("--fpga-part", default=None, help=f"default {defaults.FPGA_PART}")
    sp.add_argument(
        "--target-cycles", type=int, default=None, help="folding: cycles/frame of the slowest layer"
    )
    sp.add_argument(
        "--target-latency-cycles", type=int, default=None, help="folding: analytic latency"
    )
    sp.add_argument(
        "--folding-preference",
        default=None,
        choices=[p.value for p in FoldingPreference],
        help="tie-break among foldings that meet the target",
    )
    sp.add_argument("--fifo-sizing", default=None, choices=[f.value for f in FifoSizing])
    sp.add_argument(
        "--bench",
        default="harness",
        choices=["harness", "cocotb"],
        help="verdict testbench: compiled Verilator harness (fast) or cocotb",
    )
    sp.add_argument(
        "--x-random", action="store_true", help="randomise unknowns (Verilator x-assign unique)"
    )
    sp.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="harness processes over the vectors (0: cores)",
    )
    sp.add_argument(
        "--ray", metavar="ADDRESS", default=None, help="run the verdict's shards as Ray tasks"
    )
    sp.add_argument(
        "--compiler", default="g++", choices=["g++", "clang++", "auto"], help="harness C++ compiler"
    )
    sp.set_defaults(func=cmd_build)

    from sim.cache_cli import add_cache_parser

    add_cache_parser(sub)

    sp = sub.add_parser("experiment", help="compression experiments (resumable; JSON, table, plot)")
    sp.add_argument("name", help="e.g. fullycon-pruning, fullycon-quantization")
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--grid", default="full", choices=["small", "full"])
    sp.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting of the grid (JSON value), e.g. --set n_layers=30",
    )
    sp.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run the grid points as Ray tasks (auto, ray://HOST:10001, or local)",
    )
    sp.set_defaults(func=cmd_experiment)

    from bitstreams.boards import BOARDS

    for command, what in (
        ("bitstream", "Vivado: block design with DMA, bitstream, .hwh, post-route reports"),
        ("synth", "Vivado: out-of-context synthesis of the accelerator (LUT/FF/DSP/BRAM, Fmax)"),
    ):
        sp = sub.add_parser(command, help=what)
        sp.add_argument("build_dir", help="a finished `qphy build` directory (or its hw/)")
        sp.add_argument("--board", required=True, choices=sorted(BOARDS))
        sp.add_argument("--out", required=True, type=Path)
        sp.add_argument("--saif", type=Path, default=None, help="switching activity for power")
        sp.set_defaults(func=cmd_bitstream)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Brevitas warns at import about an optional CUDA kernel package it does not need here.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    return run_command("qphy", build_parser, argv, ("brevitas", "torch", "matplotlib", "PIL"))


if __name__ == "__main__":
    sys.exit(main())
