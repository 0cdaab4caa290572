"""Build-step hooks for graphs with forks, joins and pooling (qphy's own RTL stream layers).

:func:`convert_graph_layers` runs inside ``step_convert_to_hw``: FINN's conversions of the
ONNX/FINN nodes onto its HW layers (Add of two streams -> ElementwiseAdd, Concat ->
StreamingConcat, MaxPool -> depthwise SWG + Pool, GlobalAveragePool -> GlobalAccPool + Mul,
Split -> StreamingSplit); :func:`insert_forks` after the MVAU/threshold conversion (a tensor
read by several layers -> DuplicateStreams). :func:`streamline_graph` moves scales past forks
and joins inside ``step_streamline``.
:func:`specialize_graph_layers` runs before FINN's SpecializeLayers and picks qphy's RTL
variants (:mod:`hw.layers.ops`; importing it registers them with FINN).
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

import hw.layers.ops  # noqa: F401 - registers the *_rtl variants with FINN

GRAPH_OPS = frozenset({"Add", "Concat", "MaxPool", "MaxPoolNHWC", "GlobalAveragePool", "Split"})


def _has_fork(model: ModelWrapper) -> bool:
    tensors = [i.name for i in model.graph.input] + [t for n in model.graph.node for t in n.output]
    return any(len(model.find_consumers(t) or []) > 1 for t in tensors)


def _stream_add(model: ModelWrapper, node) -> bool:
    """Only an Add of two integer streams (a skip connection) becomes a HW layer; constant
    adds stay for streamlining or the host's float tail."""
    return (
        node.op_type == "Add"
        and all(model.get_initializer(t) is None for t in node.input)
        and all(model.get_tensor_datatype(t).is_integer() for t in node.input)
    )


def convert_graph_layers(model: ModelWrapper) -> ModelWrapper:
    """FINN's HW conversions of branch/join/pool nodes (no-op for a plain chain)."""
    from finn.transformation.fpgadataflow.convert_to_hw.concat import InferConcatLayer
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
        InferElementwiseBinaryOperation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import (
        InferGlobalAccPoolLayer,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from finn.transformation.fpgadataflow.convert_to_hw.split import InferSplitLayer
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    ops = {n.op_type for n in model.graph.node}
    if not (ops & GRAPH_OPS) and not _has_fork(model):
        return model
    if ops & {"MaxPool", "MaxPoolNHWC"}:
        model = model.transform(InferPool())
        model = model.transform(InferConvInpGen())
    if "GlobalAveragePool" in ops:
        model = model.transform(InferGlobalAccPoolLayer())
    if "Add" in ops:
        model = model.transform(InferElementwiseBinaryOperation(_stream_add))
        for node in model.graph.node:
            if node.op_type == "ElementwiseAdd":
                # The sum's own width (one bit more), not the INT32 ONNX inference gives the
                # Add: the layers after it (MVAU_rtl) need narrow inputs.
                getCustomOp(node).minimize_accumulator_width(model)
    if "Concat" in ops:
        model = model.transform(InferConcatLayer())
    if "Split" in ops:
        model = model.transform(InferSplitLayer())
    for t in (InferShapes(), InferDataTypes(), GiveUniqueNodeNames()):
        model = model.transform(t)
    return model


def insert_forks(model: ModelWrapper) -> ModelWrapper:
    """A DuplicateStreams on every tensor read by several HW layers (after all other HW
    conversions, as FINN requires)."""
    from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import (
        InferDuplicateStreamsLayer,
    )
    from qonnx.transformation.general import GiveUniqueNodeNames

    if not _has_fork(model):
        return model
    return model.transform(InferDuplicateStreamsLayer()).transform(GiveUniqueNodeNames())


def specialize_graph_layers(model: ModelWrapper) -> ModelWrapper:
    """Integer stream adds onto qphy's AddStreams_rtl (FINN's RTL add is Versal float only)."""
    from hw.layers.ops import SpecializeQphyLayers

    return model.transform(SpecializeQphyLayers())


def _join_reads_graph_input(model: ModelWrapper) -> bool:
    inputs = {i.name for i in model.graph.input}
    return any(
        n.op_type in ("Add", "Concat") and any(t in inputs for t in n.input)
        for n in model.graph.node
    )


def streamline_graph(model: ModelWrapper) -> ModelWrapper:
    """Streamline across forks and joins: scales move past forks into each branch, and past an
    add (or concat) whose inputs carry the same scale, so the join adds integers; then FINN's
    Streamline absorbs them as in a chain. Repeated until nothing moves (no-op for a chain)."""
    from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import (
        InferGlobalAccPoolLayer,
    )
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbScalarBiasIntoMultiThreshold,
        AbsorbTransposeIntoMultiThreshold,
    )
    from finn.transformation.streamline.reorder import (
        MakeMaxPoolNHWC,
        MoveAffinePastJoinConcat,
        MoveIdenticalOpPastJoinOp,
        MoveLinearPastEltwiseAdd,
        MoveLinearPastFork,
        MoveTransposePastFork,
        MoveTransposePastJoinAdd,
        MoveTransposePastJoinConcat,
    )

    ops = {n.op_type for n in model.graph.node}
    if not (ops & GRAPH_OPS) and not _has_fork(model):
        return model
    for _ in range(8):
        changed = False
        for t in (
            AbsorbScalarBiasIntoMultiThreshold(),
            PullTransposeAboveFork(),
            MoveLinearPastFork(),
            MoveLinearPastEltwiseAdd(),
            MoveAffinePastJoinConcat(),
            MoveTransposePastFork(),
            MoveTransposePastJoinAdd(),
            MoveTransposePastJoinConcat(),
            MakeMaxPoolNHWC(),
            AbsorbTransposeIntoMultiThreshold(),
            AbsorbConsecutiveTransposes(),
            MergeIdenticalTransposes(),
            *([InferGlobalAccPoolLayer()] if "GlobalAveragePool" in ops else []),
        ):
            if isinstance(t, MoveIdenticalOpPastJoinOp) and _join_reads_graph_input(model):
                continue  # FINN's join movers assume every join input has a producer
            model, c = t.apply(model)
            changed |= c
        model = model.transform(Streamline())
        if not changed:
            break
    return model


class PullTransposeAboveFork(Transformation):
    """``t -> {Transpose(p) -> A, B}`` becomes ``t -> Transpose(p) -> {A, Transpose(p^-1) -> B}``.

    After conv lowering, the conv branch of a skip connection starts with the NCHW -> NHWC
    transpose while the skip branch reads NCHW; with the transpose above the fork both branches
    stream NHWC, and the inverse transposes meeting at the join move past it (FINN's
    MoveTransposePastJoinAdd) to where a chain would have them.
    """

    def apply(self, model):
        for tensor in [i.name for i in model.graph.input] + [
            t for n in model.graph.node for t in n.output
        ]:
            consumers = model.find_consumers(tensor) or []
            if len(consumers) < 2:
                continue
            trans = next((c for c in consumers if c.op_type == "Transpose"), None)
            if trans is None or all(c.op_type == "Transpose" for c in consumers):
                continue
            perm = list(helper.get_attribute_value(trans.attribute[0]))
            inv = [perm.index(i) for i in range(len(perm))]
            moved = trans.output[0]
            for c in consumers:
                if c is trans:
                    continue
                back = model.make_new_valueinfo_name()
                model.set_tensor_shape(back, model.get_tensor_shape(tensor))
                model.set_tensor_datatype(back, model.get_tensor_datatype(tensor))
                node = helper.make_node("Transpose", [moved], [back], perm=inv)
                model.graph.node.insert(list(model.graph.node).index(trans) + 1, node)
                c.input[list(c.input).index(tensor)] = back
            return model, True
        return model, False


class MergeIdenticalTransposes(Transformation):
    """Two Transposes with the same permutation reading one tensor become one (its output is
    then forked): FINN's transpose absorption duplicates a transpose per consumer."""

    def apply(self, model):
        for tensor in [i.name for i in model.graph.input] + [
            t for n in model.graph.node for t in n.output
        ]:
            trans = [c for c in model.find_consumers(tensor) or [] if c.op_type == "Transpose"]
            for other in trans[1:]:
                if list(other.attribute[0].ints) != list(trans[0].attribute[0].ints):
                    continue
                if any(g.name == other.output[0] for g in model.graph.output):
                    continue  # a graph output: leave it
                for c in model.find_consumers(other.output[0]) or []:
                    c.input[list(c.input).index(other.output[0])] = trans[0].output[0]
                model.graph.node.remove(other)
                return model, True
        return model, False


#: qphy's RTL layers folded here, with the attribute that sets their lanes per beat.
_FOLD_ATTR = {
    "DuplicateStreams_rtl": "PE",
    "AddStreams_rtl": "PE",
    "GlobalAccPool_rtl": "PE",
    "StreamingConcat_rtl": "SIMD",
    "StreamingSplit_rtl": "SIMD",
}


def fold_graph_layers(model: ModelWrapper, target_cycles: int) -> ModelWrapper:
    """PE/SIMD of the fork, add, concat, split and sum pool: the fewest lanes that meet the
    cycles-per-frame target (a divisor of the channels, of every input's channels for a concat
    or split; the widest when none does). Width converters after folding adapt their
    neighbours. The max pool keeps its window generator's SIMD (their beats must match)."""
    import math

    for node in model.graph.node:
        attr = _FOLD_ATTR.get(node.op_type)
        if attr is None:
            continue
        inst = getCustomOp(node)
        if node.op_type in ("StreamingConcat_rtl", "StreamingSplit_rtl"):
            chans = math.gcd(*inst.get_nodeattr("ChannelsPerStream"))
        elif node.op_type == "AddStreams_rtl":
            chans = int(inst.get_nodeattr("out_shape")[-1])
        else:
            chans = int(inst.get_nodeattr("NumChannels"))
        for lanes in [d for d in range(1, chans + 1) if chans % d == 0]:
            inst.set_nodeattr(attr, lanes)
            if inst.get_exp_cycles() <= target_cycles:
                break
    return model
