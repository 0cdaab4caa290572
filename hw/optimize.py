"""Folding search: per-layer PE/SIMD that minimises latency (or resources, or the initiation
interval) subject to fitting the part with a margin.

Input: the dataflow model after ``specialize_layers`` (MVAU_rtl and Thresholding_rtl nodes in a
chain) and the part. Output: the model with PE/SIMD set on every compute node, and a
``SearchResult`` (the chosen folding, its modelled figures, the frontier) that the hw report and
report.json carry. The RTL verdict then measures what the model predicts.

The models, per compute layer ``i`` (an MVAU and the Thresholding that follows it, which takes
the MVAU's PE so no width converter sits between them):

* cycles per frame: FINN's ``(MW/SIMD) * (MH/PE) * vectors`` and ``(C/PE) * vectors``;
* latency: the sum over layers of their cycles plus their pipeline depths (the MVU core's
  ``4 + clog2(SIMD) + (SIMD == 1)``, the weight stream and AXI registers, the thresholding's
  two registers per comparison stage); each FIFO/DWC adds :data:`STREAM_STAGE_CYCLES`. A chain
  of fully connected layers cannot overlap much: a layer needs its whole input vector for its
  first output, so this sum is close to what the RTL measures;
* resources: FINN's per-node estimates (DSP: ``ceil(PE/4) * SIMD`` on DSP48E2; LUT: FINN reads
  0 for the RTL MVU's logic, so LUT is the thresholds' and memories' only until Yosys counts
  it; BRAM_18K, URAM). A weight memory at most :data:`DISTRIBUTED_MAX_DEPTH` deep goes to
  LUT-RAM (``ram_style = distributed``, as Vivado's "auto" would put it), at one LUT per
  64 x 1 bit: FINN would count a wide, shallow memory as many BRAMs (4000 bits x 40 words:
  111 BRAM_18K).

Search: per layer, the (PE, SIMD) candidates that no other candidate beats on both cycles and
DSPs; then a dynamic programme over layers with the DSP count as the budget axis gives, for
every DSP total, the least latency (``latency``) or the least initiation interval
(``throughput``); ``resources`` takes the fewest DSPs whose slowest layer meets
``target_cycles``. Every point of the DSP axis that improves on the cheaper ones is the
frontier. LUT/BRAM/URAM are checked on the chosen point and the search backs off to a cheaper
one while they do not fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.config import Optimize
from hw.devices import require_device
from hw.folding import divisors, fold_window_producers, n_vectors, swg_simd_choices, window_producer
from qphy.errors import ConfigError

log = logging.getLogger(__name__)

#: Share of each resource of the part a search may use (place and route needs slack).
DEFAULT_MARGIN = 0.85
#: Cycles a FIFO or width converter adds on the way through (registered AXI handshakes).
STREAM_STAGE_CYCLES = 2
#: Registers around the MVU core: weight stream readout, input and output AXI stages.
MVU_EXTRA_DEPTH = 4
RESOURCE_KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
#: Deepest weight memory put in LUT-RAM (a RAM64X1S holds 64 words of one bit); deeper ones
#: keep FINN's "auto" (BRAM in its estimate).
DISTRIBUTED_MAX_DEPTH = 64


@dataclass(frozen=True)
class Candidate:
    """One folding of one compute layer (MVAU + its Thresholding)."""

    pe: int
    simd: int
    ram_style: str  # the weight memory's: "auto" (FINN counts BRAM) or "distributed" (LUTs)
    cycles: int  # the slower of the MVAU and its Thresholding, per frame
    latency: int  # cycles + pipeline depths
    res: dict[str, float]


@dataclass
class SearchResult:
    """The chosen folding and what the models say about it."""

    mode: str
    fpga_part: str
    margin: float
    budget: dict[str, float]
    folding: dict[str, dict[str, int]]
    model_latency_cycles: int
    model_cycles_per_frame: int
    model_resources: dict[str, float]
    frontier: list[dict] = field(default_factory=list)
    macs_per_frame: int = 0
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 0 else 0


def mvu_depth(simd: int) -> int:
    """Pipeline depth of an MVU with this SIMD (mvu.sv's core plus its surrounding stages)."""
    return 4 + _clog2(simd) + (simd == 1) + MVU_EXTRA_DEPTH


def thresholding_depth(n_thresholds: int) -> int:
    """thresholding.sv: one comparison stage per threshold bit, two registers each with
    DEEP_PIPELINE, plus the output FIFO and register."""
    return 2 * _clog2(n_thresholds + 1) + 2


def _estimate(inst, part: str) -> dict[str, float]:
    return {
        "LUT": float(inst.lut_estimation(part)),
        "BRAM_18K": float(inst.bram_estimation(part)),
        "URAM": float(inst.uram_estimation(part)),
        "DSP": float(inst.dsp_estimation(part)),
    }


@dataclass
class _Layer:
    mvau: object  # the MVAU node
    thresh: object | None  # its Thresholding node, if one follows
    candidates: list[Candidate]


def _pareto(cands: list[Candidate], metric) -> list[Candidate]:
    """Candidates whose ``metric`` beats that of every candidate with fewer DSPs (ties on
    DSPs: the better metric, then fewer LUTs, then fewer PE)."""
    cands = sorted(cands, key=lambda c: (c.res["DSP"], metric(c), c.res["LUT"], c.pe))
    kept: list[Candidate] = []
    best = None
    for c in cands:
        if best is None or metric(c) < best:
            kept.append(c)
            best = metric(c)
    return kept


def candidate_metric(mode: Optimize, target_cycles: int):
    """What a layer's candidate is judged by, besides its DSPs, for ``mode``."""
    if mode is Optimize.LATENCY:
        return lambda c: (c.latency, c.res["LUT"])
    if mode is Optimize.THROUGHPUT:
        return lambda c: (c.cycles, c.latency, c.res["LUT"])
    return lambda c: (c.cycles > target_cycles, c.res["LUT"], c.latency)


def layer_candidates(model: ModelWrapper, node, thresh, part: str, metric) -> list[Candidate]:
    """Every (PE, SIMD) of an MVAU (SIMD restricted to what its window generator can emit),
    with its Thresholding at the same PE; Pareto-pruned on DSPs and ``metric``."""
    inst = getCustomOp(node)
    mw, mh, nv = inst.get_nodeattr("MW"), inst.get_nodeattr("MH"), n_vectors(inst)
    swg = window_producer(model, node)
    simds = swg_simd_choices(getCustomOp(swg)) if swg is not None else divisors(mw)
    t_inst = getCustomOp(thresh) if thresh is not None else None
    saved = (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"), inst.get_nodeattr("ram_style"))
    cands = []
    for pe in divisors(mh):
        if t_inst is not None and t_inst.get_nodeattr("NumChannels") % pe:
            continue
        for simd in simds:
            depth = (mw * mh) // (pe * simd)
            style = "distributed" if depth <= DISTRIBUTED_MAX_DEPTH else "auto"
            inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
            inst.set_nodeattr("ram_style", style)
            cycles = (mw // simd) * (mh // pe) * nv
            res = _estimate(inst, part)
            if style == "distributed":  # FINN counts no LUT for it: one LUT per 64 x 1 bit
                w_bits = inst.get_input_datatype(1).bitwidth()
                res["LUT"] += math.ceil(depth / 64) * pe * simd * w_bits
            latency = cycles + mvu_depth(simd)
            if swg is not None:
                win = fold_window_producers(model, node, simd)
                cycles = max(cycles, win)
            if t_inst is not None:
                t_inst.set_nodeattr("PE", pe)
                t_cycles = (t_inst.get_nodeattr("NumChannels") // pe) * n_vectors(t_inst)
                cycles = max(cycles, t_cycles)
                # one beat per cycle behind the MVU: its depth and the last beat
                latency += thresholding_depth(t_inst.get_nodeattr("numSteps")) + 1
                for k, v in _estimate(t_inst, part).items():
                    res[k] += v
            cands.append(Candidate(pe, simd, style, int(cycles), int(latency), res))
    inst.set_nodeattr("PE", saved[0])
    inst.set_nodeattr("SIMD", saved[1])
    inst.set_nodeattr("ram_style", saved[2])
    return _pareto(cands, metric)


def _layers(model: ModelWrapper, part: str, metric) -> list[_Layer]:
    layers = []
    for node in model.graph.node:
        if node.op_type.startswith("MVAU"):
            consumer = model.find_consumer(node.output[0])
            thresh = (
                consumer
                if consumer is not None and consumer.op_type.startswith("Thresholding")
                else None
            )
            layers.append(_Layer(node, thresh, layer_candidates(model, node, thresh, part, metric)))
        elif node.op_type.startswith("Thresholding"):
            producer = model.find_producer(node.input[0])
            if producer is None or not producer.op_type.startswith("MVAU"):
                raise ConfigError(
                    f"--optimize: {node.name} is a Thresholding without an MVAU before it; "
                    "the search knows MVAU(+Thresholding) chains only"
                )
        elif not node.op_type.startswith(("ConvolutionInputGenerator", "FMPadding")):
            raise ConfigError(f"--optimize: no folding model for {node.op_type} ({node.name})")
    if not layers:
        raise ConfigError("--optimize: the model has no MVAU layer to fold")
    return layers


def _fits(res: dict[str, float], budget: dict[str, float]) -> bool:
    return all(res.get(k, 0) <= budget[k] for k in budget)


def _dp(layers: list[_Layer], dsp_cap: int, objective) -> dict[int, tuple]:
    """For every reachable DSP total <= dsp_cap: the best (objective, choices) over layers."""
    states: dict[int, tuple] = {0: ((0, 0, 0.0), [])}  # dsp -> ((ii, latency, lut), choices)
    for layer in layers:
        nxt: dict[int, tuple] = {}
        for dsp, ((ii, lat, lut), chosen) in states.items():
            for c in layer.candidates:
                d = dsp + int(c.res["DSP"])
                if d > dsp_cap:
                    continue
                val = (
                    max(ii, c.cycles),
                    lat + c.latency + STREAM_STAGE_CYCLES,
                    lut + c.res["LUT"],
                )
                if d not in nxt or objective(val) < objective(nxt[d][0]):
                    nxt[d] = (val, [*chosen, c])
        states = nxt
    return states


def search(
    model: ModelWrapper,
    fpga_part: str,
    mode: Optimize,
    target_cycles: int,
    margin: float = DEFAULT_MARGIN,
) -> tuple[ModelWrapper, SearchResult]:
    """Fold ``model`` for ``mode`` within ``margin`` of ``fpga_part``'s capacity.

    Raises:
        ConfigError: no folding fits (even the slowest), or the model holds layers the
            search has no model for.
    """
    dev = require_device(fpga_part)
    budget = {k: dev.capacity[k] * margin for k in RESOURCE_KEYS}
    layers = _layers(model, fpga_part, candidate_metric(mode, target_cycles))
    # DP values are (initiation interval, latency, LUT)
    if mode is Optimize.LATENCY:
        objective = lambda v: (v[1], v[0], v[2])  # noqa: E731
    elif mode is Optimize.THROUGHPUT:
        objective = lambda v: (v[0], v[1], v[2])  # noqa: E731
    else:
        objective = lambda v: (v[0] > target_cycles, v[2], v[1])  # noqa: E731
    states = _dp(layers, int(budget["DSP"]), objective)
    if not states:
        raise ConfigError(
            f"--optimize: no folding fits {fpga_part} within {margin:.0%} of its "
            f"{dev.capacity['DSP']} DSPs"
        )

    def total(chosen: list[Candidate]) -> dict[str, float]:
        return {k: sum(c.res[k] for c in chosen) for k in RESOURCE_KEYS}

    frontier, best_so_far = [], None
    for dsp in sorted(states):
        val, chosen = states[dsp]
        if best_so_far is None or objective(val) < objective(best_so_far):
            best_so_far = val
            frontier.append(
                {
                    "DSP": dsp,
                    "model_cycles_per_frame": val[0],
                    "model_latency_cycles": val[1],
                    "LUT": val[2],
                    "fits": _fits(total(chosen), budget),
                }
            )
    if mode is Optimize.RESOURCES:
        order = sorted(states, key=lambda d: (objective(states[d][0])[0], d, states[d][0][2]))
    else:
        order = sorted(states, key=lambda d: (objective(states[d][0]), d))
    pick = next((d for d in order if _fits(total(states[d][1]), budget)), None)
    if pick is None:
        raise ConfigError(f"--optimize: no folding fits {fpga_part} within {margin:.0%}")
    (ii, lat, _), chosen = states[pick]
    if mode is Optimize.RESOURCES and ii > target_cycles:
        log.warning(
            "--optimize resources: no fitting folding meets %d cycles/frame; fastest is %d",
            target_cycles,
            ii,
        )
    folding = {}
    for layer, c in zip(layers, chosen, strict=True):
        inst = getCustomOp(layer.mvau)
        inst.set_nodeattr("PE", c.pe)
        inst.set_nodeattr("SIMD", c.simd)
        inst.set_nodeattr("ram_style", c.ram_style)
        fold_window_producers(model, layer.mvau, c.simd)
        folding[layer.mvau.name] = {"PE": c.pe, "SIMD": c.simd, "ram_style": c.ram_style}
        if layer.thresh is not None:
            getCustomOp(layer.thresh).set_nodeattr("PE", c.pe)
            folding[layer.thresh.name] = {"PE": c.pe}
    macs = sum(
        getCustomOp(layer.mvau).get_nodeattr("MW")
        * getCustomOp(layer.mvau).get_nodeattr("MH")
        * n_vectors(getCustomOp(layer.mvau))
        for layer in layers
    )
    result = SearchResult(
        mode=mode.value,
        fpga_part=fpga_part,
        margin=margin,
        budget=budget,
        folding=folding,
        model_latency_cycles=int(lat),
        model_cycles_per_frame=int(ii),
        model_resources=total(chosen),
        frontier=frontier,
        macs_per_frame=int(macs),
        note=(
            "models: FINN cycles + pipeline depths, FINN resource estimates (MVAU_rtl LUT "
            "reads 0); the RTL verdict measures the latency, --synth counts the resources"
        ),
    )
    log.info(
        "--optimize %s on %s: model latency %d cycles, %d cycles/frame, %d DSP",
        mode.value,
        fpga_part,
        lat,
        ii,
        pick,
    )
    return model, result


def physics(macs_per_frame: int, fpga_part: str, cycles_per_frame: int, w_bits: int = 4) -> dict:
    """MACs per cycle a frame rate needs against what the part's DSPs can do.

    An MVAU_rtl DSP48E2 does 4 MACs per cycle at 4-bit weights (FINN packs 4 PEs per DSP),
    fewer wider; DSP58 3 (SIMD lanes). This is the ceiling before any LUT-based MAC.
    """
    dev = require_device(fpga_part)
    per_dsp = 4 if dev.dsp_block == "DSP48E2" and w_bits <= 4 else 1
    need = math.ceil(macs_per_frame / cycles_per_frame)
    return {
        "macs_per_frame": macs_per_frame,
        "cycles_per_frame": cycles_per_frame,
        "macs_per_cycle_needed": need,
        "macs_per_dsp_per_cycle": per_dsp,
        "dsp_needed": math.ceil(need / per_dsp),
        "dsp_capacity": dev.capacity["DSP"],
    }
