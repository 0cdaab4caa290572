"""Export hook for dataflow graphs with forks and joins (see :mod:`hw.graph_stitch`).

For a partition that is not a plain chain, every manifest node gets the names and widths of the
streams it reads and writes, each join input a branch FIFO sized analytically from the latency
difference of the paths (FINN's per-layer cycle estimates as each layer's first-output
latency, an upper bound), and the analytic latency becomes the longest path instead of the sum.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.folding import cycles_per_layer
from hw.graph_stitch import FIFO_MODULE, branch_fifo_depths, insert_branch_fifos, topo_order
from hw.layers.wrapper import RTL_DIR
from qphy.contracts import NodeSpec

#: Layers that make a partition a graph (forks and joins).
GRAPH_LAYERS = frozenset(
    {"DuplicateStreams_rtl", "AddStreams_rtl", "StreamingConcat_rtl", "StreamingSplit_rtl"}
)


def _stream(name: str) -> str:
    return "s_" + re.sub(r"\W", "_", name)


def graph_entries(
    model: ModelWrapper, entries: list[dict], src_dir: Path
) -> tuple[list[dict], int] | None:
    """(manifest node entries with streams and branch FIFOs, longest-path latency cycles), or
    None for a plain chain (the linear stitcher's case, unchanged)."""
    if not any(n.op_type in GRAPH_LAYERS for n in model.graph.node):
        return None
    cycles = cycles_per_layer(model)
    specs: list[NodeSpec] = []
    beats: dict[str, int] = {}
    folds: dict[str, list[int]] = {}
    for node, entry in zip(model.graph.node, entries, strict=True):
        inst = getCustomOp(node)
        ins = [t for t in node.input if model.get_initializer(t) is None]
        spec = NodeSpec.from_json(
            {
                **entry,
                "inputs": [_stream(t) for t in ins],
                "outputs": [_stream(t) for t in node.output],
                "in_widths": [int(inst.get_instream_width_padded(i)) for i in range(len(ins))],
                "out_widths": [
                    int(inst.get_outstream_width_padded(j)) for j in range(len(node.output))
                ],
            }
        )
        specs.append(spec)
        for j, t in enumerate(node.output):
            beats[_stream(t)] = int(math.prod(inst.get_folded_output_shape(j)[:-1]))
        if node.op_type == "StreamingConcat_rtl":
            simd = inst.get_nodeattr("SIMD")
            folds[node.name] = [c // simd for c in inst.get_nodeattr("ChannelsPerStream")]
    for node in model.graph.node:
        for t in node.input:
            if model.get_initializer(t) is None and _stream(t) not in beats:
                inst = getCustomOp(node)
                beats[_stream(t)] = int(math.prod(inst.get_folded_input_shape(0)[:-1]))
    ii = max(cycles.values()) if cycles else 1
    depths = branch_fifo_depths(specs, cycles, beats, ii, folds)
    specs = insert_branch_fifos(specs, depths)
    if depths:
        shutil.copyfile(RTL_DIR / f"{FIFO_MODULE}.sv", src_dir / f"{FIFO_MODULE}.sv")
    return [s.to_json() for s in specs], _longest_path(specs, cycles)


def _longest_path(specs: list[NodeSpec], cycles: dict[str, float]) -> int:
    """Cycles of the slowest path from the input to the output (sum of per-layer cycles)."""
    arrival: dict[str, float] = {}
    for n in topo_order(specs):
        if n.op_type.startswith("StreamingFIFO") or n.op_type == "QphyBranchFIFO":
            c = 0.0
        else:
            c = float(cycles.get(n.name, 0))
        t = max((arrival.get(s, 0.0) for s in n.inputs), default=0.0) + c
        for s in n.outputs:
            arrival[s] = t
    return int(max(arrival.values(), default=0))
