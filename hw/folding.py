"""Folding (PE/SIMD) from a cycles-per-frame target, and the analytic per-layer cycles.

FINN's SetFolding does the same job but assumes HLS layers for some ops; this one knows only the
RTL layers qphy stitches and picks, per compute layer, the least parallelism that meets the
target (fewest DSPs/LUTs), preferring to match the producer's output parallelism so fewer
data-width converters are needed.

A conv layer is FMPadding -> ConvolutionInputGenerator (SWG) -> MVAU. The SWG's output beat must
be the MVAU's input beat, so the MVAU's SIMD is chosen among what the RTL SWG can emit: a
divisor of the input channels C (one window element group per beat; the SWG and its FMPadding
then use the same SIMD), or the whole K*K*C window per beat (the SWG's ``parallel_window`` mode,
SWG/FMPadding SIMD = C), which is what one output pixel per cycle needs (e.g. CsiNet+'s 7x7 convs
on 2 channels).

The SWG and FMPadding have cycles of their own for each such SIMD: a SIMD is a candidate for the
MVAU only if its window producers meet the target too. The SWG's default (non-parallel) mode
adds a buffer fill of K-1 padded rows to ``max(OFMDim_w * K * K, stride * IFMDim_w) * C/SIMD``
cycles per output row, which can exceed the MVAU's cycles at PE = MH: a stride-2 3x3 conv on
32 channels at SIMD 16 takes 1230 cycles in the SWG for 1152 in the MVAU. When no SIMD
brings them under the target, the fastest window producers are kept (their floor: one padded
input pixel per cycle).
"""

from __future__ import annotations

import logging
import math

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

log = logging.getLogger(__name__)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def dsp_cost(pe: int, simd: int, dsp_block: str) -> int:
    """DSPs of an MVAU_rtl with this folding (FINN's model: DSP48E2 packs 4 PEs per DSP)."""
    if dsp_block == "DSP58":
        return pe * math.ceil(simd / 3)
    return math.ceil(pe / 4) * simd


def mvau_folding(
    mw: int,
    mh: int,
    n_vectors: int,
    target: int,
    dsp_block: str = "DSP48E2",
    prefer_latency: bool = False,
    simd_choices: list[int] | None = None,
) -> tuple[int, int]:
    """(PE, SIMD) meeting cycles <= target with the fewest DSPs, then the fewest PE*SIMD,
    then the fewest PE (narrower streams, cheaper Thresholding layers downstream).

    With ``prefer_latency``, the smallest SIMD (shortest DSP chain) wins first.
    ``simd_choices`` restricts SIMD (default: every divisor of MW).
    Falls back to fully parallel (PE=MH, SIMD=MW) when no folding meets the target.
    """
    best: tuple[int, int, int, int] | None = None
    for pe in _divisors(mh):
        for simd in simd_choices or _divisors(mw):
            cycles = (mw // simd) * (mh // pe) * n_vectors
            if cycles > target:
                continue
            dsp = dsp_cost(pe, simd, dsp_block)
            key = (simd, dsp, pe, simd) if prefer_latency else (dsp, pe * simd, pe, simd)
            if best is None or key < best:
                best = key
    if best is None:
        return mh, mw
    return best[2], best[3]


def thresholding_pe(channels: int, n_vectors: int, target: int, producer_pe: int | None) -> int:
    """PE for a Thresholding layer: the producer's PE if it meets the target, else the least PE."""
    if (
        producer_pe
        and channels % producer_pe == 0
        and (channels // producer_pe) * n_vectors <= (target)
    ):
        return producer_pe
    for pe in _divisors(channels):
        if (channels // pe) * n_vectors <= target:
            return pe
    return channels


def _n_vectors(inst) -> int:
    nv = inst.get_nodeattr("numInputVectors")
    return int(math.prod(nv)) if isinstance(nv, list | tuple) else int(nv)


def swg_simd_choices(swg) -> list[int]:
    """SIMDs an MVAU fed by this RTL SWG may use: divisors of C, or the whole window."""
    channels = int(swg.get_nodeattr("IFMChannels"))
    k_h, k_w = swg.get_nodeattr("ConvKernelDim")
    choices = _divisors(channels)
    if k_h * k_w > 1:
        choices.append(k_h * k_w * channels)
    return choices


def _window_producer(model: ModelWrapper, mvau_node):
    """The sliding-window generator (SWG) feeding an MVAU, or None (1x1 conv / FC layer)."""
    producer = model.find_producer(mvau_node.input[0])
    if producer is None or not producer.op_type.startswith("ConvolutionInputGenerator"):
        return None
    return producer


def fold_window_producers(model: ModelWrapper, mvau_node, mvau_simd: int) -> int:
    """Set the SIMD (and parallel_window mode) of the SWG and FMPadding feeding an MVAU.

    Returns the larger of their cycles per frame (0 when the MVAU has no SWG producer).
    """
    swg_node = _window_producer(model, mvau_node)
    if swg_node is None:
        return 0
    swg = getCustomOp(swg_node)
    channels = int(swg.get_nodeattr("IFMChannels"))
    parallel = mvau_simd > channels
    simd = channels if parallel else mvau_simd
    swg.set_nodeattr("SIMD", simd)
    if "parallel_window" in swg.get_nodeattr_types():
        swg.set_nodeattr("parallel_window", int(parallel))
    cycles = int(swg.get_exp_cycles())
    pad_node = model.find_producer(swg_node.input[0])
    if pad_node is not None and pad_node.op_type.startswith("FMPadding"):
        pad = getCustomOp(pad_node)
        pad.set_nodeattr("SIMD", simd)
        cycles = max(cycles, int(pad.get_exp_cycles()))
    return cycles


def window_stride(model: ModelWrapper, mvau_node) -> int:
    """Vertical stride of the SWG feeding an MVAU (1 without one).

    A strided conv's windows come in bursts: all windows of an output row become available
    while the last of its ``stride`` input rows streams in, none during the others. Without a
    FIFO to spread them, the MVAU (and its Thresholding) must finish an output row within one
    input row's time or stall the whole chain upstream: ConvCsiNet's stride-2 conv at 4 cycles
    per window (1024 of a 1156-cycle target) measured 1764 cycles per frame. So the layers behind
    a stride-s SWG are folded to ``target / s``, up to the next SWG: 1x1 convs in between (no
    SWG of their own) see the same bursts (ConvSquCsiNet's squeeze behind a strided fire
    expand at 4 cycles per pixel: 1548 cycles per frame for 1158 analytic).
    """
    producer = _window_producer(model, mvau_node)
    if producer is None:
        return 1
    return max(1, int(getCustomOp(producer).get_nodeattr("Stride")[0]))


def window_simd_choices(model: ModelWrapper, mvau_node, target: int) -> list[int] | None:
    """SIMDs the MVAU may use given its SWG: those whose SWG and FMPadding meet ``target``,
    or, if none does, those with the fewest window cycles. None without an SWG producer."""
    producer = _window_producer(model, mvau_node)
    if producer is None:
        return None
    cycles = {
        s: fold_window_producers(model, mvau_node, s)
        for s in swg_simd_choices(getCustomOp(producer))
    }
    fast = [s for s, c in cycles.items() if c <= target]
    return fast or [s for s, c in cycles.items() if c == min(cycles.values())]


def apply_folding(
    model: ModelWrapper,
    target_cycles: int,
    dsp_block: str = "DSP48E2",
    prefer_latency: bool = False,
) -> ModelWrapper:
    """Set PE/SIMD on every MVAU/Thresholding node so each meets ``target_cycles``
    (``target_cycles / stride`` behind a strided conv window, see :func:`window_stride`); the
    SWG and FMPadding of a conv follow their MVAU (see the module docstring)."""
    producer_pe: int | None = None
    layer_target = target_cycles
    stride = 1
    for node in model.graph.node:
        inst = getCustomOp(node)
        if node.op_type.startswith("MVAU"):
            mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
            choices = window_simd_choices(model, node, target_cycles)
            if choices is not None:  # a KxK conv: its window sets the burst factor
                stride = window_stride(model, node)
            # else a 1x1 conv / FC layer: it sees the bursts of the last window upstream
            layer_target = max(1, target_cycles // stride)
            pe, simd = mvau_folding(
                mw, mh, _n_vectors(inst), layer_target, dsp_block, prefer_latency, choices
            )
            inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
            fold_window_producers(model, node, simd)
            producer_pe = pe
        elif node.op_type.startswith("Thresholding"):
            channels = inst.get_nodeattr("NumChannels")
            pe = thresholding_pe(channels, _n_vectors(inst), layer_target, producer_pe)
            inst.set_nodeattr("PE", pe)
            producer_pe = pe
    return model


def cycles_per_layer(model: ModelWrapper) -> dict[str, int]:
    """FINN's analytic cycles per frame for every HW node (FIFOs/DWCs included)."""
    return {n.name: int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node}


def fold_for_latency(
    model: ModelWrapper,
    target_cycles: int,
    target_latency_cycles: int | None,
    dsp_block: str = "DSP48E2",
    prefer_latency: bool = False,
) -> tuple[ModelWrapper, int]:
    """Fold to ``target_cycles``; with a latency target, lower it until sum(cycles) fits.

    The sum of the layers' cycles is an upper bound of a chain's latency, which pipelined conv
    layers beat by far (each starts on its producer's first rows): when even full parallelism
    cannot bring the sum under the latency target (the FMPadding/SWG layers have a floor of one
    padded input pixel per cycle), the latency target is left to the simulation to verify and
    the folding follows ``target_cycles`` alone.

    Returns the model and the per-layer target that was used.
    """
    target = target_cycles
    if target_latency_cycles is not None:
        apply_folding(model, 1, dsp_block, prefer_latency)
        floor = sum(cycles_per_layer(model).values())
        if floor > target_latency_cycles:
            log.warning(
                "latency target %d cycles is below the analytic layer sum even fully parallel "
                "(%d cycles, pipelined conv layers overlap); folding to %d cycles/layer and "
                "leaving the latency to the simulation",
                target_latency_cycles,
                floor,
                target_cycles,
            )
            target_latency_cycles = None
    apply_folding(model, target, dsp_block, prefer_latency)
    if target_latency_cycles is None:
        return model, target
    while sum(cycles_per_layer(model).values()) > target_latency_cycles and target > 1:
        target = max(1, int(target * 0.8))
        apply_folding(model, target, dsp_block, prefer_latency)
    total = sum(cycles_per_layer(model).values())
    log.info("folding target %d cycles/layer -> analytic layer sum %d cycles", target, total)
    return model, target


#: Public names of the helpers the folding search (hw/optimize.py) shares with this module.
divisors, n_vectors, window_producer = _divisors, _n_vectors, _window_producer
