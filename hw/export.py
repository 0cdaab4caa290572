"""Export the generated RTL of a dataflow partition for sim/ (which never imports finn).

Writes under ``cfg.build_dir``:

* ``rtl/src/``: every Verilog/SystemVerilog source of every layer (finn-rtllib copies included),
  unmodified except for the hardware bug fixes in :data:`RTL_FIXES` (they go to every consumer
  of rtl/, the bitstream recipes included); sim/ patches its own copies for Verilator.
* ``rtl/mem/``: weight and threshold memory files, renamed per layer
  (``<node>_memblock.dat``, ``<node>_threshs_<pe>_<stage>.dat``).
* ``rtl/src/qphy_dataflow_top.sv``: the stitched AXI-stream top (:mod:`hw.stitch`).
* ``rtl/manifest.json``: a :class:`qphy.contracts.Manifest`: the stream chain in order (module,
  widths, memory files, FIFO depth), the boundary streams and the HostSpec.
* ``hw_report.json``: folding, cycles per layer, resource estimates, FIFO depths.
"""

from __future__ import annotations

import filecmp
import json
import logging
import shutil
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.config import HwBuildConfig
from hw.devices import capacity, utilisation
from hw.folding import cycles_per_layer
from hw.graph_export import graph_entries
from hw.legalize import require_signed_rtl_weights
from qphy.contracts import HostSpec, Manifest, NodeSpec, StreamSpec
from qphy.errors import PipelineError
from qphy.fsutil import atomic_write_json

log = logging.getLogger(__name__)

RESOURCE_KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")


def device_fit(fpga_part: str, total: dict) -> dict:
    """Capacity and utilisation of the part from the device table (:mod:`hw.devices`); None
    where the part has no row."""
    device = capacity(fpga_part)
    if device is None:
        return {"device_resources": None, "utilization": None, "fits_device": None}
    device = {k: device[k] for k in RESOURCE_KEYS}
    util = utilisation({k: total[k] for k in RESOURCE_KEYS}, device)
    return {
        "device_resources": device,
        "utilization": util,
        "fits_device": all(v <= 1.0 for v in util.values()),
    }


#: mvu.sv's result pipeline: 3 DSP stages, the SIMD adder tree, one output register.
MVU_CORE_DEPTH = "4 + $clog2(SIMD) + (SIMD == 1)"
_MVU_QUEUE_LINE = "localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH;"


def patch_mvu_output_queue(text: str) -> str:
    """Size mvu_vvu_axi's output queue for the core it instantiates (finn-plus 1.6.1 bug).

    Once backpressure reaches the MVU, a registered lock stops new inputs, and the queue must
    take the result that met the stall plus every result still in the core's pipeline: one
    more than the pipeline depth. Upstream sizes it to exactly the depth it assumes,
    ``3 + $clog2(SIMD+1) + (SIMD == 1)``, while mvu.sv's pipeline is
    ``4 + $clog2(SIMD) + (SIMD == 1)`` deep (one more for every SIMD that is not a power of
    two; far more for DSP58's soft-vector path). With one result per cycle (SIMD = MW, PE = MH)
    and a consumer that stalls long enough, the queue overflows: the SRL drops a result (in
    simulation the "Overflowing output queue" assertion stops it). Seen with a 3x3 conv on 2
    channels in parallel-window mode (SIMD = MW = 18, PE = MH = 16) behind a stalling consumer,
    without FIFOs (tests/sim/test_mvu_queue.py reproduces it on one MVU).
    """
    if "qphy: output queue" in text:
        return text
    if _MVU_QUEUE_LINE not in text or "CORE_PIPELINE_DEPTH =" not in text:
        raise PipelineError("mvu_vvu_axi.sv changed upstream: cannot apply the output-queue fix")
    fixed = (
        "// qphy: output queue sized for mvu.sv's pipeline too (see hw/export.py).\n"
        f"\t\tlocalparam int unsigned  MVU_CORE_DEPTH = {MVU_CORE_DEPTH};\n"
        "\t\tlocalparam int unsigned  MAX_IN_FLIGHT = 1 +\n"
        "\t\t\t(MVU_CORE_DEPTH > CORE_PIPELINE_DEPTH? MVU_CORE_DEPTH : CORE_PIPELINE_DEPTH);"
    )
    return text.replace(_MVU_QUEUE_LINE, fixed, 1)


#: Hardware bug fixes applied to the exported copies of finn-rtllib sources, by file name.
RTL_FIXES = {"mvu_vvu_axi.sv": patch_mvu_output_queue}


def _copy_unique(src: Path, dst_dir: Path, name: str | None = None) -> str:
    dst = dst_dir / (name or src.name)
    fix = RTL_FIXES.get(dst.name)
    if dst.exists():
        same = (
            fix(src.read_text()) == dst.read_text() if fix else filecmp.cmp(src, dst, shallow=False)
        )
        if not same:
            raise PipelineError(f"two different RTL sources are both named {dst.name}")
    elif fix:
        dst.write_text(fix(src.read_text()))
        log.info("applied the %s fix to %s", fix.__name__, dst.name)
    else:
        shutil.copyfile(src, dst)
    return dst.name


def _stream(inst, inp: bool) -> StreamSpec:
    if inp:
        dt, folded, width = (
            inst.get_input_datatype(0),
            inst.get_folded_input_shape(0),
            inst.get_instream_width_padded(0),
        )
    else:
        dt, folded, width = (
            inst.get_output_datatype(0),
            inst.get_folded_output_shape(0),
            inst.get_outstream_width_padded(0),
        )
    beats = 1
    for d in folded[:-1]:
        beats *= int(d)
    return StreamSpec(
        datatype=dt.name,
        elem_bits=int(dt.bitwidth()),
        signed=bool(dt.signed()),
        elems_per_beat=int(folded[-1]),
        beats_per_frame=beats,
        width_bits=int(width),
    )


def _node_entry(node, src_dir: Path, mem_dir: Path, rtllib: Path) -> dict:
    inst = getCustomOp(node)
    gen_dir = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    files = [_copy_unique(Path(f), src_dir) for f in inst.get_rtl_file_list(abspath=True)]
    entry = {
        "name": node.name,
        "op_type": node.op_type,
        "module": inst.get_nodeattr("gen_top_module") or node.name,
        "in_width_bits": int(inst.get_instream_width_padded(0)),
        "out_width_bits": int(inst.get_outstream_width_padded(0)),
        "files": files,
        "memstream": None,
        "thresholds_prefix": None,
        "fifo_depth": None,
    }
    require_signed_rtl_weights(node, inst)
    if node.op_type.startswith("MVAU") and inst.get_nodeattr("mem_mode") == "dynamic":
        from hw.dynamic_matmul import dynload_entry

        entry["memstream"] = dynload_entry(inst, gen_dir, src_dir, files, _copy_unique)
    elif node.op_type.startswith("MVAU"):
        if inst.get_nodeattr("mem_mode") != "internal_decoupled":
            raise PipelineError(
                f"{node.name}: mem_mode {inst.get_nodeattr('mem_mode')} "
                "cannot be stitched (need internal_decoupled)"
            )
        wrapper = next(gen_dir.glob("*_memstream_wrapper.v"))
        for f in (
            wrapper,
            rtllib / "axi/hdl/axilite.sv",
            rtllib / "memstream/hdl/memstream_axi.sv",
            rtllib / "memstream/hdl/memstream.sv",
        ):
            files.append(_copy_unique(f, src_dir))
        mem = _copy_unique(gen_dir / "memblock.dat", mem_dir, f"{node.name}_memblock.dat")
        entry["memstream"] = {
            "module": wrapper.stem,
            "init_file": f"mem/{mem}",
            "width_bits": int(inst.get_instream_width_padded(1)),
        }
    elif node.op_type.startswith("Thresholding"):
        for f in sorted(gen_dir.glob("*_threshs_*.dat")):
            _copy_unique(f, mem_dir)
        entry["thresholds_prefix"] = f"mem/{node.name}_"
    elif node.op_type.startswith("StreamingFIFO"):
        entry["fifo_depth"] = int(inst.get_nodeattr("depth"))
    return entry


def resource_estimates(model: ModelWrapper, fpga_part: str) -> tuple[dict, dict]:
    """(per-layer, total) LUT/BRAM_18K/URAM/DSP estimates from FINN's analytic models."""
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    per_layer = res_estimation(model, fpga_part)
    per_layer = {k: {r: float(v.get(r, 0)) for r in RESOURCE_KEYS} for k, v in per_layer.items()}
    total = {r: int(round(sum(v[r] for v in per_layer.values()))) for r in RESOURCE_KEYS}
    return per_layer, total


def hw_report(model: ModelWrapper, cfg: HwBuildConfig) -> dict:
    """Analytic report: folding, cycles per layer, estimated latency/throughput and resources."""
    cycles = cycles_per_layer(model)
    per_layer_res, total_res = resource_estimates(model, cfg.fpga_part)
    folding = {}
    for node in model.graph.node:
        inst = getCustomOp(node)
        attrs = {
            a: inst.get_nodeattr(a)
            for a in ("PE", "SIMD", "parallel_window")
            if a in inst.get_nodeattr_types()
        }
        if attrs:
            folding[node.name] = attrs
    compute = {k: v for k, v in cycles.items() if not k.startswith("StreamingFIFO")}
    return {
        "fpga_part": cfg.fpga_part,
        "clock_mhz": cfg.clock_mhz,
        "folding_target_cycles": int(model.get_metadata_prop("qphy_folding_target_cycles") or 0),
        "folding": folding,
        "cycles_per_layer": cycles,
        "analytic_cycles_per_frame": max(compute.values()) if compute else 0,
        "analytic_latency_cycles": sum(compute.values()),
        "estimated_resources_per_layer": per_layer_res,
        "estimated_resources": total_res,
        **device_fit(cfg.fpga_part, total_res),
        "fifo_depths": {
            n.name: int(getCustomOp(n).get_nodeattr("depth"))
            for n in model.graph.node
            if n.op_type.startswith("StreamingFIFO")
        },
        # the --optimize search's choice and frontier (hw.optimize), when it ran
        "folding_search": json.loads(model.get_metadata_prop("qphy_folding_search") or "null"),
    }


def export_rtl(model: ModelWrapper, cfg: HwBuildConfig, host: dict) -> Path:
    """Write rtl/ (sources, memories, the stitched top, manifest.json) and hw_report.json.

    ``host`` is the host-side metadata the steps collected; it must form a valid
    :class:`~qphy.contracts.HostSpec` (ContractError otherwise). Returns the rtl dir.
    """
    from hw.stitch import write_top
    from hw.toolchain import finn_rtllib_dir

    rtl_dir = cfg.build_dir / "rtl"
    if rtl_dir.exists():
        shutil.rmtree(rtl_dir)
    src_dir, mem_dir = rtl_dir / "src", rtl_dir / "mem"
    src_dir.mkdir(parents=True)
    mem_dir.mkdir()
    rtllib = finn_rtllib_dir()
    nodes = [_node_entry(n, src_dir, mem_dir, rtllib) for n in model.graph.node]
    first, last = getCustomOp(model.graph.node[0]), getCustomOp(model.graph.node[-1])
    report = hw_report(model, cfg)
    graph = graph_entries(model, nodes, src_dir)  # forks/joins: streams, branch FIFOs
    if graph is not None:
        nodes, report["analytic_latency_cycles"] = graph
        report["fifo_depths"].update(
            {n["name"]: n["fifo_depth"] for n in nodes if n["op_type"] == "QphyBranchFIFO"}
        )
    manifest = Manifest(
        fpga_part=cfg.fpga_part,
        clock_mhz=float(cfg.clock_mhz),
        input=_stream(first, inp=True),
        output=_stream(last, inp=False),
        nodes=[NodeSpec.from_json(n) for n in nodes],
        host=HostSpec.from_json(host),
        analytic_cycles_per_frame=int(report["analytic_cycles_per_frame"]),
        analytic_latency_cycles=int(report["analytic_latency_cycles"]),
    )
    write_top(rtl_dir, manifest)
    manifest.write(rtl_dir / Manifest.FILE)
    atomic_write_json(cfg.build_dir / "hw_report.json", report)
    log.info("exported %d RTL layers to %s", len(nodes), rtl_dir)
    return rtl_dir
