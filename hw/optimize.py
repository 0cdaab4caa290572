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
* resources: the calibrated model of Yosys's per-unit counts (:mod:`hw.synth_model`: LUT, FF,
  DSP, BRAM_18K, URAM of every MVAU compute module, weight streamer, thresholding, FIFO and
  width converter, linear in the unit's parameters, fitted by NNLS on synthesized builds).
  FINN's estimates (no FF figure, 0 LUTs for the RTL MVU) chose points that did not fit their
  parts by synthesized count; this model budgets what Yosys counts. A weight memory at most
  :data:`DISTRIBUTED_MAX_DEPTH` deep goes to LUT-RAM (``ram_style = distributed``).
  The FIFOs (depths from the build's FIFO sizing) and the width converters between layers are
  counted as FINN will insert them: a converter and a second FIFO where a layer's output width
  differs from the next layer's input width.

Search: per layer, the (PE, SIMD) candidates that no other candidate beats on the mode's metric
and every resource; then a dynamic programme over layers whose states carry the exact modelled
totals: a state over the budget of any resource is dropped, so every state at the end fits; of
the others the best by the objective is kept per output width (so the width converter and FIFO
between two layers are costed exactly) and per bucket (:data:`BUCKET`) of the weighted resource
use ``sum(w * used / budget)``. Two passes: every resource weighted alike, then the first
pick's binding resources weighted up; the better pick wins. ``latency`` takes the least
modelled end-to-end latency, ``throughput`` the least initiation interval, ``resources`` the
fewest DSPs (then LUTs) whose slowest layer meets ``target_cycles``. The frontier: per DSP
total, the best point, kept where it improves on every cheaper one.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw import synth_model as sm
from hw.config import FifoSizing, Optimize
from hw.devices import require_device
from hw.folding import divisors, fold_window_producers, n_vectors, swg_simd_choices, window_producer
from qphy import defaults
from qphy.errors import ConfigError

log = logging.getLogger(__name__)

#: Cycles a FIFO or width converter adds on the way through (registered AXI handshakes).
STREAM_STAGE_CYCLES = 2
#: Registers around the MVU core: weight stream readout, input and output AXI stages.
MVU_EXTRA_DEPTH = 4
#: What the search budgets (the device table's names; LUT is Yosys's LUT_total).
RESOURCE_KEYS = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
#: Deepest weight memory put in LUT-RAM (a RAM64X1S holds 64 words of one bit); deeper ones
#: keep FINN's "auto" (Yosys maps them to block RAM).
DISTRIBUTED_MAX_DEPTH = sm.DISTRIBUTED_MAX_DEPTH
#: Resolution of the dynamic programme's resource axis (the weighted sum of the shares of the
#: budgets used).
BUCKET = 0.005
RESOURCE_MODEL = (
    "hw/synth_model.py: Yosys per-unit counts (qphy synth --tool yosys --per-layer), linear "
    "in the units' parameters, NNLS-fitted on calibration builds"
)


@dataclass(frozen=True)
class Candidate:
    """One folding of one compute layer (MVAU + its Thresholding)."""

    pe: int
    simd: int
    ram_style: str  # the weight memory's: "auto" (block RAM) or "distributed" (LUT-RAM)
    cycles: int  # the slower of the MVAU and its Thresholding, per frame
    latency: int  # cycles + pipeline depths
    res: dict[str, float]  # modelled Yosys counts: the units and the FIFOs inside the layer
    in_width: int = 0  # bits per beat into the MVAU
    in_depth: int = 0  # its input FIFO's depth
    out_width: int = 0  # bits per beat out of the layer
    out_depth: int = 0  # its output FIFO's depth


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
    resource_model: str = RESOURCE_MODEL
    model_utilisation: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def mvu_depth(simd: int) -> int:
    """Pipeline depth of an MVU with this SIMD (mvu.sv's core plus its surrounding stages)."""
    return 4 + sm.clog2(simd) + (simd == 1) + MVU_EXTRA_DEPTH


def thresholding_depth(n_thresholds: int) -> int:
    """thresholding.sv: one comparison stage per threshold bit, two registers each with
    DEEP_PIPELINE, plus the output FIFO and register."""
    return 2 * sm.clog2(n_thresholds + 1) + 2


def _zero() -> dict[str, float]:
    return dict.fromkeys(RESOURCE_KEYS, 0.0)


def _fifo(width: int, depth: int, sizing: FifoSizing, coeffs) -> dict[str, float]:
    if sizing is FifoSizing.NONE:
        return _zero()
    return sm.predict_unit("fifo", {"width": width, "depth": depth}, coeffs)


def entry_cost(prev: Candidate | None, c: Candidate, sizing: FifoSizing, coeffs) -> dict:
    """Modelled counts of the stream units in front of a layer's MVAU: its input FIFO and,
    where the previous layer's output width differs from its input width, the previous
    layer's output FIFO and a width converter (FINN's InsertDWC + InsertFIFO)."""
    res = _fifo(c.in_width, c.in_depth, sizing, coeffs)
    if prev is not None and prev.out_width != c.in_width:
        res = sm.add(res, _fifo(prev.out_width, prev.out_depth, sizing, coeffs))
        dwc = {"in_width": prev.out_width, "out_width": c.in_width}
        res = sm.add(res, sm.predict_unit("dwc", dwc, coeffs))
    return res


@dataclass
class _Layer:
    mvau: object  # the MVAU node
    thresh: object | None  # its Thresholding node, if one follows
    candidates: list[Candidate]
    chained: bool = False  # fed by the previous layer's output (FIFO/DWC between them)


def _dominates(a: tuple, ra: np.ndarray, b: tuple, rb: np.ndarray) -> bool:
    return a <= b and bool(np.all(ra <= rb))


def _pareto(cands: list[Candidate], metric) -> list[Candidate]:
    """Candidates that no other beats on ``metric`` and every resource (ties: the first in
    the order of (DSP, metric, LUT, FF, PE))."""
    cands = sorted(cands, key=lambda c: (c.res["DSP"], metric(c), c.res["LUT"], c.res["FF"], c.pe))
    kept: list[Candidate] = []
    vecs: list[np.ndarray] = []
    for c in cands:
        v = np.array([c.res[k] for k in RESOURCE_KEYS])
        if any(_dominates(metric(k), kv, metric(c), v) for k, kv in zip(kept, vecs, strict=True)):
            continue
        kept.append(c)
        vecs.append(v)
    return kept


def candidate_metric(mode: Optimize, target_cycles: int):
    """What a layer's candidate is judged by, besides its resources, for ``mode``."""
    if mode is Optimize.LATENCY:
        return lambda c: (c.latency,)
    if mode is Optimize.THROUGHPUT:
        return lambda c: (c.cycles, c.latency)
    return lambda c: (c.cycles > target_cycles, c.latency)


def _minimized(model: ModelWrapper) -> dict[str, object]:
    """The nodes of a copy of ``model`` with the widths the build will give them
    (hw.steps.step_minimize_bit_width): the accumulator and threshold widths the units have."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import (  # noqa: PLC0415
        MinimizeAccumulatorWidth,
    )
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import (  # noqa: PLC0415
        MinimizeWeightBitWidth,
    )
    from finn.transformation.streamline.round_thresholds import (  # noqa: PLC0415
        RoundAndClipThresholds,
    )
    from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: PLC0415

    m = ModelWrapper(copy.deepcopy(model.model))
    for t in (MinimizeWeightBitWidth(), MinimizeAccumulatorWidth(), RoundAndClipThresholds()):
        m = m.transform(t)
    m = m.transform(InferDataTypes())
    return {n.name: getCustomOp(n) for n in m.graph.node}


def layer_candidates(
    model: ModelWrapper,
    node,
    thresh,
    part: str,
    metric,
    minimized: dict | None = None,
    fifo_sizing: FifoSizing = FifoSizing.FRAME,
    coeffs: dict | None = None,
) -> list[Candidate]:
    """Every (PE, SIMD) of an MVAU (SIMD restricted to what its window generator can emit),
    with its Thresholding at the same PE, costed by the synth model; Pareto-pruned on
    ``metric`` and the resources."""
    minimized = minimized if minimized is not None else _minimized(model)
    inst = getCustomOp(node)
    m_inst = minimized[node.name]
    mw, mh, nv = inst.get_nodeattr("MW"), inst.get_nodeattr("MH"), n_vectors(inst)
    swg = window_producer(model, node)
    simds = swg_simd_choices(getCustomOp(swg)) if swg is not None else divisors(mw)
    t_inst = getCustomOp(thresh) if thresh is not None else None
    core0, _ = sm.mvau_params(m_inst)
    w_bits = core0["w_bits"]
    out_bits = core0["acc_bits"]
    if t_inst is not None:
        t_params = sm.thresholding_params(minimized[thresh.name])
        out_bits = t_params["out_bits"]
    cands = []
    for pe in divisors(mh):
        if t_inst is not None and t_inst.get_nodeattr("NumChannels") % pe:
            continue
        for simd in simds:
            depth = (mw * mh) // (pe * simd)
            style = "distributed" if depth <= DISTRIBUTED_MAX_DEPTH else "auto"
            cycles = (mw // simd) * (mh // pe) * nv
            core = {**core0, "pe": pe, "simd": simd}
            weights = {"width": pe * simd * w_bits, "depth": depth, "ram_style": style}
            res = sm.add(
                sm.predict_unit("mvau_core", core, coeffs),
                sm.predict_unit("mvau_weights", weights, coeffs),
            )
            latency = cycles + mvu_depth(simd)
            if swg is not None:
                win = fold_window_producers(model, node, simd)
                cycles = max(cycles, win)
            out_depth = fifo_sizing.depth(nv * (mh // pe))
            if t_inst is not None:
                t_cycles = (t_inst.get_nodeattr("NumChannels") // pe) * n_vectors(t_inst)
                cycles = max(cycles, t_cycles)
                # one beat per cycle behind the MVU: its depth and the last beat
                latency += thresholding_depth(t_inst.get_nodeattr("numSteps")) + 1
                res = sm.add(res, sm.predict_unit("thresholding", {**t_params, "pe": pe}, coeffs))
                # the FIFO between the MVAU and its thresholding
                res = sm.add(res, _fifo(pe * core0["acc_bits"], out_depth, fifo_sizing, coeffs))
            cands.append(
                Candidate(
                    pe, simd, style, int(cycles), int(latency), res,
                    in_width=simd * core0["in_bits"],
                    in_depth=fifo_sizing.depth(nv * (mw // simd)),
                    out_width=pe * out_bits,
                    out_depth=out_depth,
                )
            )  # fmt: skip
    return _pareto(cands, metric)


def _layers(
    model: ModelWrapper, part: str, metric, fifo_sizing: FifoSizing, coeffs
) -> list[_Layer]:
    minimized = _minimized(model)
    layers: list[_Layer] = []
    for node in model.graph.node:
        if node.op_type.startswith("MVAU"):
            consumer = model.find_consumer(node.output[0])
            thresh = (
                consumer
                if consumer is not None and consumer.op_type.startswith("Thresholding")
                else None
            )
            producer = model.find_producer(node.input[0])
            chained = (
                bool(layers)
                and producer is not None
                and producer.name
                in (
                    layers[-1].mvau.name,
                    getattr(layers[-1].thresh, "name", None),
                )
            )
            cands = layer_candidates(
                model, node, thresh, part, metric, minimized, fifo_sizing, coeffs
            )
            layers.append(_Layer(node, thresh, cands, chained))
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


def utilisation(res: dict[str, float], capacity: dict[str, float]) -> dict[str, float]:
    """Share of the part per resource (0 where the part has none and none is used)."""
    return {
        k: (res[k] / capacity[k] if capacity[k] else (0.0 if res[k] == 0 else math.inf))
        for k in RESOURCE_KEYS
    }


def _vec(res: dict[str, float]) -> np.ndarray:
    return np.array([res[k] for k in RESOURCE_KEYS], dtype=float)


def _dp(
    layers: list[_Layer], budget: dict, order, sizing: FifoSizing, coeffs, weights: np.ndarray
) -> list[dict]:
    """Ways through the layers within ``budget``: per layer, every state plus every candidate
    that stays within every budget; of those, the best by the objective per output width and
    bucket (:data:`BUCKET`) of the weighted resource use ``sum(weights * used / budget)``.

    ``order(ii, lat, res)`` gives the sort keys (numpy arrays, most significant last, as
    ``np.lexsort`` takes them) of the mode's objective. Returns the final states as dicts
    (``ii``, ``lat``, ``res`` vector, ``chosen`` candidates)."""
    cap = _vec(budget)
    ii = np.zeros(1, dtype=np.int64)
    lat = np.zeros(1, dtype=np.int64)
    res = np.zeros((1, len(RESOURCE_KEYS)))
    prev_idx = np.full(1, -1)
    back: list[tuple[np.ndarray, np.ndarray]] = []  # per layer: (state it came from, candidate)
    prev_cands: list[Candidate] | None = None
    for i, layer in enumerate(layers):
        cands = layer.candidates
        cres = np.array([_vec(c.res) for c in cands])
        if i == len(layers) - 1:
            cres += np.array([_vec(_fifo(c.out_width, c.out_depth, sizing, coeffs)) for c in cands])
        if layer.chained and prev_cands is not None:
            entry = np.array(
                [[_vec(entry_cost(p, c, sizing, coeffs)) for c in cands] for p in prev_cands]
            )
            total = res[:, None, :] + cres[None, :, :] + entry[prev_idx]
        else:
            entry = np.array([_vec(entry_cost(None, c, sizing, coeffs)) for c in cands])
            total = res[:, None, :] + (cres + entry)[None, :, :]
        c_cycles = np.array([c.cycles for c in cands])
        c_lat = np.array([c.latency for c in cands])
        s_idx, c_idx = np.nonzero(np.all(total <= cap + 1e-9, axis=2))
        if s_idx.size == 0:
            return []
        new_res = total[s_idx, c_idx]
        new_ii = np.maximum(ii[s_idx], c_cycles[c_idx])
        new_lat = lat[s_idx] + c_lat[c_idx] + STREAM_STAGE_CYCLES
        # best state per (output width/depth, bucket of the weighted resource use)
        out_key = np.array([hash((c.out_width, c.out_depth)) for c in cands])[c_idx]
        use = (new_res / np.where(cap > 0, cap, 1.0)) @ weights
        rank = np.lexsort(order(new_ii, new_lat, new_res))
        keys = np.column_stack([out_key[rank], np.floor(use[rank] / BUCKET).astype(np.int64)])
        _, first = np.unique(keys, axis=0, return_index=True)
        k = rank[np.sort(first)]  # in objective order
        log.debug(
            "search layer %d: %d candidates, %d combinations, %d states",
            i, len(cands), len(s_idx), len(k),
        )  # fmt: skip
        back.append((s_idx[k], c_idx[k]))
        ii, lat, res, prev_idx = new_ii[k], new_lat[k], new_res[k], c_idx[k]
        prev_cands = cands
    out = []
    for j in range(len(ii)):
        chosen, s = [], j
        for (from_s, cand), layer in zip(reversed(back), reversed(layers), strict=True):
            chosen.append(layer.candidates[cand[s]])
            s = from_s[s]
        out.append({"ii": int(ii[j]), "lat": int(lat[j]), "res": res[j], "chosen": chosen[::-1]})
    return out


def search(
    model: ModelWrapper,
    fpga_part: str,
    mode: Optimize,
    target_cycles: int,
    margin: float = defaults.OPTIMIZE_MARGIN,
    fifo_sizing: FifoSizing = FifoSizing.FRAME,
    coeffs: dict | None = None,
) -> tuple[ModelWrapper, SearchResult]:
    """Fold ``model`` for ``mode`` within ``margin`` of ``fpga_part``'s capacity, every
    resource counted by the calibrated synth model (``coeffs``: the shipped ones by default).

    Raises:
        ConfigError: no folding fits (even the slowest), a margin outside (0, 1], or the
            model holds layers the search has no model for.
    """
    if not 0 < margin <= 1:
        raise ConfigError(f"--optimize-margin must be in (0, 1], got {margin}")
    dev = require_device(fpga_part)
    budget = {k: dev.capacity[k] * margin for k in RESOURCE_KEYS}
    layers = _layers(model, fpga_part, candidate_metric(mode, target_cycles), fifo_sizing, coeffs)

    cap = _vec(budget)

    def worst(r: np.ndarray) -> np.ndarray:
        return np.max(np.where(cap > 0, r / np.where(cap > 0, cap, 1.0), 0.0), axis=-1)

    # np.lexsort keys, least significant first
    if mode is Optimize.LATENCY:
        order = lambda i, la, r: (worst(r), i, la)  # noqa: E731
    elif mode is Optimize.THROUGHPUT:
        order = lambda i, la, r: (worst(r), la, i)  # noqa: E731
    else:
        d, lut = RESOURCE_KEYS.index("DSP"), RESOURCE_KEYS.index("LUT")
        order = lambda i, la, r: (la, r[..., lut], r[..., d], i > target_cycles)  # noqa: E731
    # one pass with every resource weighted alike, one with the first pick's binding ones
    # weighted by their use (fewer collisions where it matters); the better pick wins
    ones = (cap > 0).astype(float)
    states = _dp(layers, budget, order, fifo_sizing, coeffs, ones)
    if states:
        first = min(
            states,
            key=lambda s: tuple(
                k[0]
                for k in order(np.array([s["ii"]]), np.array([s["lat"]]), s["res"][None, :])[::-1]
            ),
        )
        w = (first["res"] / np.where(cap > 0, cap, 1.0)) ** 4
        states += _dp(
            layers, budget, order, fifo_sizing, coeffs, w / max(w.sum(), 1e-12) * ones.sum()
        )
    if not states:
        raise ConfigError(
            f"--optimize: no folding fits {fpga_part} within {margin:.0%} of its capacity "
            f"(LUT {dev.capacity['LUT']}, FF {dev.capacity['FF']}, DSP {dev.capacity['DSP']}, "
            f"BRAM_18K {dev.capacity['BRAM_18K']}) by the synth model"
        )
    rank = np.lexsort(
        order(
            np.array([s["ii"] for s in states]),
            np.array([s["lat"] for s in states]),
            np.array([s["res"] for s in states]),
        )
    )
    states = [states[j] for j in rank]  # best first
    di = RESOURCE_KEYS.index("DSP")
    by_dsp: dict[int, dict] = {}
    for s in states:
        by_dsp.setdefault(round(float(s["res"][di])), s)  # the best per DSP total
    main_key = (lambda s: s["lat"]) if mode is not Optimize.THROUGHPUT else (lambda s: s["ii"])
    frontier, best_so_far = [], None
    for dsp in sorted(by_dsp):
        s = by_dsp[dsp]
        if best_so_far is None or main_key(s) < best_so_far:
            best_so_far = main_key(s)
            r = dict(zip(RESOURCE_KEYS, s["res"].tolist(), strict=True))
            frontier.append(
                {
                    "DSP": dsp,
                    "model_cycles_per_frame": s["ii"],
                    "model_latency_cycles": s["lat"],
                    **{k: round(r[k]) for k in RESOURCE_KEYS if k != "DSP"},
                    "fits": _fits(r, budget),
                }
            )
    pick = states[0]
    ii, lat = pick["ii"], pick["lat"]
    pick_res = dict(zip(RESOURCE_KEYS, pick["res"].tolist(), strict=True))
    if mode is Optimize.RESOURCES and ii > target_cycles:
        log.warning(
            "--optimize resources: no fitting folding meets %d cycles/frame; fastest is %d",
            target_cycles,
            ii,
        )
    folding = {}
    for layer, c in zip(layers, pick["chosen"], strict=True):
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
    total = {k: round(v, 1) for k, v in pick_res.items()}
    result = SearchResult(
        mode=mode.value,
        fpga_part=fpga_part,
        margin=margin,
        budget=budget,
        folding=folding,
        model_latency_cycles=int(lat),
        model_cycles_per_frame=int(ii),
        model_resources=total,
        frontier=frontier,
        macs_per_frame=int(macs),
        model_utilisation={k: round(v, 4) for k, v in utilisation(pick_res, dev.capacity).items()},
        note=(
            "models: FINN cycles + pipeline depths; resources: Yosys counts predicted per "
            "unit (MVAU compute + weight streamer, thresholding, FIFOs, width converters; "
            "window generators and padding not counted); qphy synth --tool yosys "
            "--per-layer measures them, the RTL verdict the latency"
        ),
    )
    log.info(
        "--optimize %s on %s: model latency %d cycles, %d cycles/frame, LUT %d FF %d DSP %d "
        "BRAM_18K %d (synth model)",
        mode.value, fpga_part, lat, ii, total["LUT"], total["FF"], total["DSP"],
        total["BRAM_18K"],
    )  # fmt: skip
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
