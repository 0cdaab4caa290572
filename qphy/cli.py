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
from qphy.fsutil import check_out_dir, claimed_dir
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


#: ``--bits`` when not given (argparse.SUPPRESS keeps it absent, so `build onnx` can refuse it).
DEFAULT_BITS = parse_bits("w4a4")


def _bits(args: argparse.Namespace):
    """--bits as given (None for float), w4a4 when not given."""
    return getattr(args, "bits", DEFAULT_BITS)


def _inputs(args: argparse.Namespace) -> tuple[Path, ...]:
    """What the command reads that ``--out`` must not swallow."""
    found = [getattr(args, "checkpoint_dir", None), getattr(args, "path", None)]
    return tuple(Path(p) for p in found if p is not None)


def cmd_train(args: argparse.Namespace) -> int:
    target, cfg = _target_config(args, _bits(args))
    print(target.train(cfg, args.checkpoint_dir))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    target, cfg = _target_config(args, _bits(args))
    with claimed_dir(args.out, "evaluate", _inputs(args)) as out:
        print(target.evaluate(cfg, out, args.checkpoint_dir))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from qphy.flow import export_stage

    target, cfg = _target_config(args, _bits(args))
    check_out_dir(args.out, "export", _inputs(args))
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
    from hw.config import FifoSizing, FoldingPreference, HwBuildConfig, Optimize
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
        optimize=Optimize(args.optimize) if args.optimize else None,
        optimize_margin=getattr(args, "optimize_margin", defaults.OPTIMIZE_MARGIN),
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
        build_timeout_s=getattr(args, "build_timeout_s", 0.0),
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
    folding = rep.extras.get("folding_target") or {}
    if folding.get("met") is False:
        print(
            f"WARNING: folding target {folding['target_cycles']} cycles/frame not met "
            f"({folding['achieved_cycles_per_frame']}): {folding['why']}",
            file=sys.stderr,
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
        unused = [f for f, o in _all_options().items() if getattr(args, o.dest, None) is not None]
        unused += ["--bits"] if hasattr(args, "bits") else []
        unused += ["--checkpoint-dir"] if args.checkpoint_dir is not None else []
        if unused:
            raise ConfigError(
                f"{', '.join(sorted(unused))}: not used by `build onnx` (the QONNX file fixes "
                "the model and its bit widths)"
            )
        if args.input_precision is not None:  # refuse a bad one before any work
            from qphy.intake import parse_input_precision

            parse_input_precision(args.input_precision)
        if not Path(args.path).is_file():
            raise ConfigError(f"{args.path}: no such model file")
        check_out_dir(out, "build", _inputs(args))
        hw_cfg, sim_cfg = _hw_sim_configs(args, HwDefaults())
        rep = flow.build_onnx(
            Path(args.path), out, hw_cfg, sim_cfg, input_precision=args.input_precision
        )
        target = None
    else:
        if args.path is not None:
            raise ConfigError(f"unexpected argument '{args.path}' for the {args.target}")
        if args.input_precision is not None:
            raise ConfigError("--input-precision: for `build onnx` only (a QONNX file's input)")
        target, cfg = _target_config(args, _bits(args))
        check_out_dir(out, "build", _inputs(args))
        hw_cfg, sim_cfg = _hw_sim_configs(args, target.hw_defaults(cfg))
        rep = flow.build_target(target, cfg, out, hw_cfg, sim_cfg, args.checkpoint_dir)
    _print_verdict(rep, out, target)
    if args.synth:  # after a passing verdict (a failing one raised above)
        _yosys_synth(out, args.synth_timeout_s)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _yosys_synth(
    build_dir: Path, timeout_s: float | None, out: Path | None = None, lut_mapper: str = "abc"
) -> None:
    """Yosys synthesis of a build (bitstreams.yosys) and one line of what it counted."""
    from bitstreams.yosys import compare_with_estimate, synthesize

    rep = synthesize(build_dir, out, timeout_s, progress=_progress, lut_mapper=lut_mapper)
    res = rep["resources"]
    line = (
        f"yosys synth ({rep['fpga_part']}, {rep['family']}): LUT {res['LUT_total']:,} "
        f"(logic {res['LUT']:,}, LUTRAM {res['LUTRAM']:,}, SRL {res['SRL']:,}), "
        f"FF {res['FF']:,}, CARRY {res['CARRY']:,}, DSP {res['DSP']:,}, BRAM18 {res['BRAM18']}, "
        f"BRAM36 {res['BRAM36']}, URAM {res['URAM']}; {rep['seconds']:.0f} s, peak "
        f"{rep['peak_rss_mib']:.0f} MiB"
    )
    report_json = Path(build_dir) / Report.FILE
    if report_json.is_file():
        merged = compare_with_estimate(rep, Report.read(report_json).estimated_resources)
        ratio = ", ".join(
            f"{k} x{v:g}" for k, v in merged["ratio_to_estimate"].items() if v is not None
        )
        line += f"; synthesized / FINN estimate: {ratio}"
    print(line)
    from hw.fit import fit

    used = {"LUT": res["LUT_total"], "FF": res["FF"], "BRAM_18K": res["BRAM_18K"]}
    check = fit({**used, "URAM": res["URAM"], "DSP": res["DSP"]}, rep["fpga_part"], "yosys")
    if check["fits"] is False:
        print(
            f"WARNING: the synthesized design does not fit {rep['fpga_part']}: "
            + ", ".join(f"{k} {100 * check['utilisation'][k]:.0f} %" for k in check["over"]),
            file=sys.stderr,
        )


def cmd_bitstream(args: argparse.Namespace) -> int:
    """``qphy bitstream`` / ``qphy synth``: the Vivado flows on a finished build (needs Vivado);
    ``qphy synth --tool yosys`` (the default without Vivado): open synthesis."""
    from bitstreams.build import build_bitstream

    tool = getattr(args, "tool", None) or "vivado"
    if args.command == "synth" and args.tool is None:
        from hw.toolchain import require_vivado
        from qphy.errors import ToolNotFound

        try:
            require_vivado()
        except ToolNotFound:
            tool = "yosys"
    if tool == "yosys" and getattr(args, "per_layer", False):
        from bitstreams.yosys_layers import run_cli

        return run_cli(args.build_dir, args.timeout_s, args.out, args.lut_mapper, args.jobs)
    if tool == "yosys":
        _yosys_synth(Path(args.build_dir), args.timeout_s, args.out, args.lut_mapper)
        return 0
    if args.board is None or args.out is None:
        raise ConfigError(f"qphy {args.command} with Vivado needs --board and --out")
    mode = "ooc" if args.command == "synth" else "bitstream"
    check_out_dir(args.out, "vivado", (Path(args.build_dir),))
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
    with claimed_dir(args.out, "experiment", keep_on_failure=True) as out:
        run_experiment(args.name, out, args.grid, overrides, ray_address=args.ray)
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
    from hw.config import FifoSizing, FoldingPreference, Optimize

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
            default=argparse.SUPPRESS,
            type=_bits_or_float if allow_float else parse_bits,
            help="w<W>a<A> (2..8 bits each, default w4a4)" + (" or float" if allow_float else ""),
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
        "--input-precision",
        default=None,
        help="build onnx, graphs without an input quantizer: the input's precision, "
        "fixed<W,I> | ufixed<W,I> | int<W> (W bits incl. sign, I integer bits, as ap_fixed)",
    )
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
    sp.add_argument(
        "--build-timeout-s",
        type=float,
        default=0.0,
        help="Verilator build limit (0: scales with the design, at least 900 s)",
    )
    sp.add_argument(
        "--optimize",
        default=None,
        choices=[o.value for o in Optimize],
        help="search the folding for this goal within the part (hw/optimize.py)",
    )
    sp.add_argument(
        "--optimize-margin",
        type=float,
        default=defaults.OPTIMIZE_MARGIN,
        help="--optimize: share of each resource of the part the search may use "
        f"(default {defaults.OPTIMIZE_MARGIN})",
    )
    sp.add_argument("--synth", action="store_true", help="Yosys synthesis after a passing verdict")
    sp.add_argument(
        "--synth-timeout-s", type=float, default=None, help="stop Yosys after this long"
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
        (
            "synth",
            "out-of-context synthesis of the accelerator: Vivado (LUT/FF/DSP/BRAM, Fmax) or "
            "Yosys (counts; the default without Vivado)",
        ),
    ):
        sp = sub.add_parser(command, help=what)
        sp.add_argument("build_dir", help="a finished `qphy build` directory (or its hw/)")
        synth = command == "synth"
        sp.add_argument(
            "--board", required=not synth, default=None, choices=sorted(BOARDS), help="Vivado"
        )
        sp.add_argument(
            "--out", required=not synth, type=Path, default=None, help="default for yosys: hw/synth"
        )
        sp.add_argument("--saif", type=Path, default=None, help="switching activity for power")
        if synth:
            sp.add_argument("--tool", default=None, choices=["yosys", "vivado"])
            sp.add_argument("--timeout-s", type=float, default=None, help="Yosys: stop after")
            sp.add_argument(
                "--lut-mapper",
                default="abc",
                choices=["abc", "abc9"],
                help="Yosys: plain ABC (default) or synth_xilinx's ABC9 (slow on large designs)",
            )
            sp.add_argument(
                "--per-layer",
                action="store_true",
                help="Yosys: one out-of-context run per layer, summed (--timeout-s per run)",
            )
            sp.add_argument("--jobs", type=int, default=None, help="--per-layer: runs at once")
        sp.set_defaults(func=cmd_bitstream)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Brevitas warns at import about an optional CUDA kernel package it does not need here.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    return run_command("qphy", build_parser, argv, ("brevitas", "torch", "matplotlib", "PIL"))


if __name__ == "__main__":
    sys.exit(main())
