"""Stitch a dataflow graph with forks and joins into one AXI-stream top (the DAG stitcher).

:mod:`hw.stitch` wires a linear chain; this module wires any DAG: every node of the manifest
names the streams it reads and writes (:class:`qphy.contracts.NodeSpec` ``inputs``/``outputs``),
a stream that no node writes is a top input, one that no node reads a top output. One input
(output) stream becomes the ports ``s_axis_t*`` (``m_axis_t*``); several become ``s_axis_<k>_t*``
(``m_axis_<k>_t*``) in manifest order.

Joins (a node with several stream inputs: an add, a concat) get a branch FIFO
(``qphy_fifo.sv``) on each input, sized analytically by :func:`branch_fifo_depths` from the
latency difference of the paths that meet there: the early path must hold what it produces while
the late one is still filling its pipeline. A simulation-only monitor (inside ``ifdef
VERILATOR``) prints ``qphy-blocked <stream> ...`` on stderr when a stream has been stalled
(valid without ready) for ``MONITOR_CYCLES``; the harness turns those lines into a
:class:`~qphy.errors.DeadlockError` naming the stream when the output stops.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from qphy.contracts import NodeSpec
from qphy.errors import PipelineError

#: op_type of the branch FIFOs this module inserts (module qphy_fifo, s_axis/m_axis ports).
FIFO_OP = "QphyBranchFIFO"
FIFO_MODULE = "qphy_fifo"
#: Cycles a stream may stay stalled before the monitor reports it (well below the harness'
#: default stall limit of 100 000 cycles, far above any legal stall of the layers).
MONITOR_CYCLES = 20_000
#: Beats of slack every branch FIFO gets on top of the analytic need.
FIFO_SLACK = 2


def is_graph(nodes: Sequence[NodeSpec]) -> bool:
    """True when the nodes name their streams (a graph design) rather than form a chain."""
    return any(n.inputs for n in nodes)


def _widths(nodes: Sequence[NodeSpec]) -> dict[str, int]:
    widths: dict[str, int] = {}
    for n in nodes:
        for s, w in [
            *zip(n.inputs, n.in_widths, strict=True),
            *zip(n.outputs, n.out_widths, strict=True),
        ]:
            if widths.setdefault(s, int(w)) != int(w):
                raise PipelineError(f"stream {s}: width {widths[s]} vs {w} bits at {n.name}")
    return widths


def boundary_streams(nodes: Sequence[NodeSpec]) -> tuple[list[str], list[str]]:
    """(top inputs, top outputs): streams no node writes / no node reads, in node order."""
    written = {s for n in nodes for s in n.outputs}
    read = {s for n in nodes for s in n.inputs}
    ins = list(dict.fromkeys(s for n in nodes for s in n.inputs if s not in written))
    outs = list(dict.fromkeys(s for n in nodes for s in n.outputs if s not in read))
    for s in read | written:
        readers = sum(s in n.inputs for n in nodes)
        writers = sum(s in n.outputs for n in nodes)
        if readers > 1 or writers > 1:
            raise PipelineError(
                f"stream {s} has {writers} writer(s) and {readers} reader(s): a stream joins "
                "exactly two nodes (insert a fork for fan-out)"
            )
    return ins, outs


def topo_order(nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
    """The nodes in topological order; PipelineError on a cycle."""
    producer = {s: n.name for n in nodes for s in n.outputs}
    deps = {n.name: {producer[s] for s in n.inputs if s in producer} for n in nodes}
    by_name = {n.name: n for n in nodes}
    done: list[NodeSpec] = []
    seen: set[str] = set()
    while len(done) < len(nodes):
        ready = [n for n in nodes if n.name not in seen and deps[n.name] <= seen]
        if not ready:
            raise PipelineError("the dataflow graph has a cycle")
        for n in ready:
            seen.add(n.name)
            done.append(by_name[n.name])
    return done


def branch_fifo_depths(
    nodes: Sequence[NodeSpec],
    latency_cycles: dict[str, float],
    beats_per_frame: dict[str, int],
    cycles_per_frame: float,
    concat_folds: dict[str, list[int]] | None = None,
) -> dict[tuple[str, int], int]:
    """Analytic depth of the FIFO on each input of each join: {(node, input index): beats}.

    A stream's arrival time is the longest path of node latencies (first input to first output)
    from the top input. Input ``i`` of a join must hold what it receives while the latest input
    arrives: ``(max_j L_j - L_i)`` cycles at its stream's rate (beats per frame over the design's
    cycles per frame, at most one per cycle). A concat also reads its inputs one after the other
    per pixel, so input ``i`` waits for the earlier inputs' beats of that pixel
    (``concat_folds[node]``, beats per pixel of each input) on top. Plus :data:`FIFO_SLACK`.
    """
    arrival: dict[str, float] = {}
    for n in topo_order(nodes):
        t = max((arrival.get(s, 0.0) for s in n.inputs), default=0.0)
        for s in n.outputs:
            arrival[s] = t + float(latency_cycles.get(n.name, 0.0))
    depths: dict[tuple[str, int], int] = {}
    for n in nodes:
        if len(n.inputs) < 2:
            continue
        latest = max(arrival.get(s, 0.0) for s in n.inputs)
        folds = (concat_folds or {}).get(n.name)
        for i, s in enumerate(n.inputs):
            rate = min(1.0, beats_per_frame[s] / max(1.0, cycles_per_frame))
            need = math.ceil((latest - arrival.get(s, 0.0)) * rate)
            if folds:
                need += sum(folds[:i])
            depths[(n.name, i)] = need + FIFO_SLACK
    return depths


def insert_branch_fifos(
    nodes: Sequence[NodeSpec], depths: dict[tuple[str, int], int]
) -> list[NodeSpec]:
    """A ``qphy_fifo`` in front of each listed join input (depth >= 1 beats).

    The FIFO's input stream is renamed ``<join>_in<i>_fifo`` (its producer writes it), so a
    deadlock report names the join and the branch whose FIFO filled up.
    """
    widths = _widths(nodes)
    renamed: dict[str, str] = {}
    fifos: dict[str, NodeSpec] = {}
    for n in nodes:
        for i, s in enumerate(n.inputs):
            depth = depths.get((n.name, i))
            if depth is None:
                continue
            if depth < 1:
                raise PipelineError(f"branch FIFO depth for {n.name} input {i} must be >= 1")
            fed = f"{n.name}_in{i}_fifo"
            renamed[s] = fed
            fifos[s] = NodeSpec(
                name=f"{n.name}_fifo{i}",
                op_type=FIFO_OP,
                module=FIFO_MODULE,
                in_width_bits=widths[s],
                out_width_bits=widths[s],
                files=[f"{FIFO_MODULE}.sv"],
                fifo_depth=int(depth),
                inputs=[fed],
                outputs=[s],
                in_widths=[widths[s]],
                out_widths=[widths[s]],
                params={"DEPTH": int(depth), "WIDTH": widths[s]},
            )
    out: list[NodeSpec] = []
    for n in nodes:
        outs = [renamed.get(s, s) for s in n.outputs]
        out.append(dataclasses.replace(n, outputs=outs) if outs != n.outputs else n)
        out += [fifos[s] for s in n.outputs if s in fifos]
    # A join input that is a top input: its FIFO goes first.
    return [fifos[s] for s in fifos if s not in {x for n in nodes for x in n.outputs}] + out


def _sv_value(v: object) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, list | tuple):
        # Arrays travel as packed 32-bit fields, element 0 lowest: Verilator checks an unpacked
        # array parameter's pattern against the parameter's default size.
        return "{" + ", ".join(f"32'd{int(x)}" for x in reversed(v)) + "}"
    return str(v)


def _ports(prefix: str, k: int, n: int) -> str:
    return prefix if n == 1 else f"{prefix}_{k}"


def generate_graph_top(
    nodes: Sequence[NodeSpec],
    sources: dict[str, str],
    top: str,
    node_instance: Callable[..., list[str]],
    monitor: bool = True,
) -> str:
    """SystemVerilog of a top wiring ``nodes`` (branch FIFOs included) by their stream names.

    ``node_instance`` writes one layer's instance (:func:`hw.stitch.node_instance`; passed in so
    the two stitchers do not import each other).
    """
    widths = _widths(nodes)
    ins, outs = boundary_streams(nodes)
    if not ins or not outs:
        raise PipelineError("the dataflow graph has no input or no output stream")
    lines = [
        "// Generated by qphy hw/graph_stitch.py: do not edit.",
        "`default_nettype none",
        f"module {top} (",
        "\tinput  wire ap_clk,",
        "\tinput  wire ap_rst_n,",
    ]
    ports = []
    for k, s in enumerate(ins):
        p = _ports("s_axis", k, len(ins))
        ports += [
            f"\tinput  wire [{widths[s] - 1}:0] {p}_tdata",
            f"\tinput  wire {p}_tvalid",
            f"\toutput wire {p}_tready",
        ]
    for k, s in enumerate(outs):
        p = _ports("m_axis", k, len(outs))
        ports += [
            f"\toutput wire [{widths[s] - 1}:0] {p}_tdata",
            f"\toutput wire {p}_tvalid",
            f"\tinput  wire {p}_tready",
        ]
    lines += [",\n".join(ports), ");"]
    for s, w in widths.items():
        lines += [f"\twire [{w - 1}:0] {s}_tdata;", f"\twire {s}_tvalid;", f"\twire {s}_tready;"]
    for k, s in enumerate(ins):
        p = _ports("s_axis", k, len(ins))
        lines += [
            f"\tassign {s}_tdata = {p}_tdata;",
            f"\tassign {s}_tvalid = {p}_tvalid;",
            f"\tassign {p}_tready = {s}_tready;",
        ]
    for k, s in enumerate(outs):
        p = _ports("m_axis", k, len(outs))
        lines += [
            f"\tassign {p}_tdata = {s}_tdata;",
            f"\tassign {p}_tvalid = {s}_tvalid;",
            f"\tassign {s}_tready = {p}_tready;",
        ]
    for n in nodes:
        conns: dict[str, str] = {}
        if n.op_type == FIFO_OP:
            names = [("s_axis", n.inputs[0]), ("m_axis", n.outputs[0])]
            for port, s in names:
                for sig in ("tdata", "tvalid", "tready"):
                    conns[f"{port}_{sig}"] = f"{s}_{sig}"
        else:
            for prefix, streams in (("in", n.inputs), ("out", n.outputs)):
                for i, s in enumerate(streams):
                    for sig in ("TDATA", "TVALID", "TREADY"):
                        conns[f"{prefix}{i}_V_{sig}"] = f"{s}_{sig.lower()}"
        params = {k: _sv_value(v) for k, v in (n.params or {}).items()}
        lines += node_instance(dataclasses.replace(n, params=params), sources, conns)
    if monitor:
        lines += _monitor(nodes, widths)
    lines += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(lines)


def _monitor(nodes: Sequence[NodeSpec], widths: dict[str, int]) -> list[str]:
    """Simulation-only stall monitor: one report per stream stalled MONITOR_CYCLES in a row."""
    fifo_in = {n.inputs[0]: n for n in nodes if n.op_type == FIFO_OP}
    lines = [
        "`ifdef VERILATOR",
        "\t// qphy stall monitor (simulation only): see hw/graph_stitch.py",
    ]
    for s in widths:
        what = s
        if s in fifo_in:
            f = fifo_in[s]
            what = f"{s} (into branch FIFO {f.name}, depth {f.fifo_depth}, full)"
        lines += [
            f"\tint unsigned {s}_stalled;",
            "\talways_ff @(posedge ap_clk) begin",
            f"\t\tif (!ap_rst_n || !{s}_tvalid || {s}_tready) {s}_stalled <= 0;",
            f"\t\telse if ({s}_stalled != {MONITOR_CYCLES}) {s}_stalled <= {s}_stalled + 1;",
            f"\t\tif ({s}_stalled == {MONITOR_CYCLES - 1} && {s}_tvalid && !{s}_tready)",
            f'\t\t\t$fwrite(32\'h80000002, "qphy-blocked {what}\\n");',
            "\tend",
        ]
    lines.append("`endif")
    return lines


def blocked_streams(stderr_lines: Sequence[str]) -> list[str]:
    """The monitor's reports, branch FIFOs first (a full branch FIFO is the cause; the other
    stalled streams are upstream of it)."""
    found = [ln.split(" ", 1)[1] for ln in stderr_lines if ln.startswith("qphy-blocked ")]
    return sorted(found, key=lambda s: "branch FIFO" not in s)
