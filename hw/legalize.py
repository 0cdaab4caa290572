"""Intake of QONNX graphs from other exporters, as qonnx transformations
(``apply(model) -> (model, changed)``, no config reads inside).

Before the FINN conversion (QONNX level):

* :class:`qphy.intake.FoldStaticShapes`: ``Shape`` of a statically shaped tensor becomes a
  constant, so the Shape/Gather/Unsqueeze/Concat/Reshape flatten chains of older exporters
  fold to one Reshape.
* :class:`InsertInputQuant`: a declared input precision (``--input-precision``) as an input
  ``Quant`` in front of the first layer (for graphs without an input quantizer).
* :class:`SplitHostHead` / :class:`SplitHostPost`: the float nodes before the first quantizer
  and the Softmax/ArgMax/... after the last integer output leave the graph; they are recorded
  in the host metadata and run by :mod:`qphy.host_ops`.

After streamlining / HW conversion, lossless type legalisation for the RTL layers:

* :class:`BipolarToInt2`: bipolar {-1, +1} thresholds, weights and inputs as exact signed 2-bit
  integers (the XNOR-popcount MVAU is HLS-only).
* :class:`PreferRtl`: MVAU/Thresholding ask for their RTL variant (finn-plus picks RTL below
  4 bits only when asked) with weights of a type MVAU_rtl takes (signed, >= 2 bits: unsigned
  and 1-bit weight types widen; the values are unchanged).

Each rewrite is exact by construction and is also checked end to end: the flow compares the
accelerator's integers and the host's outputs with qonnx's execution of the ORIGINAL graph.
"""

from __future__ import annotations

import json

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qphy.contracts import HOST_META, HostNode
from qphy.errors import PipelineError, UnsupportedLayerError, UnsupportedNode
from qphy.intake import (
    LINEAR_OPS,
    InputPrecision,
    check_head,
    fold_shapes,
    walk_head,
    walk_post,
)

QONNX_DOMAIN = "qonnx.custom_op.general"


def _meta(model: ModelWrapper) -> dict:
    raw = model.get_metadata_prop(HOST_META)
    return json.loads(raw) if raw else {}


def _set_meta(model: ModelWrapper, **updates) -> None:
    meta = _meta(model)
    meta.update(updates)
    model.set_metadata_prop(HOST_META, json.dumps(meta))


def _opset(model: ModelWrapper) -> int:
    return next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), 13)


def host_node(model: ModelWrapper, node, data: str, output_index: int = 0) -> HostNode:
    """An ONNX node with one running tensor ``data`` and constant other operands."""
    inputs = [
        None if t == data else np.asarray(model.get_initializer(t)).tolist() if t else None
        for t in node.input
    ]
    attrs = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        attrs[a.name] = value.decode() if isinstance(value, bytes) else value
    attrs = {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in attrs.items()}
    attrs["_opset"] = _opset(model)
    return HostNode(node.op_type, node.name or node.op_type, inputs, attrs, output_index)


class InsertInputQuant(Transformation):
    """A declared input precision as a ``Quant`` (ROUND, zero point 0) on the data input of
    the first linear layer the graph input reaches through host-able ops.

    Raises UnsupportedLayerError if the graph already quantizes its input (the declaration would
    change what the model computes) or if no linear layer is reached.
    """

    def __init__(self, precision: InputPrecision) -> None:
        super().__init__()
        self.precision = precision

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        # Walk a shape-folded copy (a flatten chain folds to one Reshape there) but edit the
        # graph itself, which must stay executable at any batch size.
        folded = fold_shapes(ModelWrapper(model.model.__deepcopy__()))
        head = walk_head(folded)
        if head.quant is not None:
            raise UnsupportedLayerError(
                [
                    UnsupportedNode(
                        head.quant.name or "<unnamed>",
                        head.quant.op_type,
                        f"the model quantizes its own input; --input-precision "
                        f"{self.precision.text} is only for graphs without an input quantizer",
                    )
                ],
                stage="input precision",
            )
        if head.stop is None or head.stop.op_type not in LINEAR_OPS:
            check_head(folded, head)
        stop = next(n for n in model.graph.node if n.name == head.stop.name)
        data = stop.input[0]
        p = self.precision
        out = model.make_new_valueinfo_name()
        names = [f"input_precision_{k}" for k in ("scale", "zeropt", "bits")]
        for name, value in zip(names, (p.scale, 0.0, float(p.bits)), strict=True):
            model.set_initializer(name, np.asarray(value, dtype=np.float32))
        quant = helper.make_node(
            "Quant",
            [data, *names],
            [out],
            domain=QONNX_DOMAIN,
            name="InputPrecision",
            signed=int(p.signed),
            narrow=0,
            rounding_mode="ROUND",
        )
        stop.input[0] = out
        model.graph.node.insert(list(model.graph.node).index(stop), quant)
        return model, False


class SplitHostHead(Transformation):
    """Cut the float nodes between the graph input and the input quantizer off the graph.

    The quantizer's input becomes the graph input; the nodes go to the host metadata
    (``input_head``) with the original input shape (``input_shape``). Anything the host head
    cannot run, or a linear layer reached without a quantizer, is refused by node name.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        head = walk_head(model)
        check_head(model, head)
        if not head.nodes:
            return model, False
        graph_in = model.graph.input[0]
        raw_shape = [int(d) for d in model.get_tensor_shape(graph_in.name)[1:]]
        nodes, data = [], graph_in.name
        for node in head.nodes:
            nodes.append(host_node(model, node, data).to_json())
            data = node.output[0]
        if data != head.quant.input[0]:
            raise UnsupportedLayerError(
                [UnsupportedNode(head.quant.name, head.quant.op_type, "input not the head's")],
                stage="host head",
            )
        shape = model.get_tensor_shape(data)
        for node in head.nodes:
            model.graph.node.remove(node)
        _drop_value_info(model, data)
        new_in = helper.make_tensor_value_info(data, TensorProto.FLOAT, shape)
        model.graph.input.remove(graph_in)
        model.graph.input.insert(0, new_in)
        _set_meta(model, input_head=nodes, input_shape=raw_shape)
        return model, True


class SplitHostPost(Transformation):
    """Cut trailing Softmax/LogSoftmax/ArgMax/TopK/Sigmoid off the graph (host ``output_post``).

    Their input must be one vector per frame (``(1, M)``), as the host applies them to the
    accelerator's flattened output.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        nodes, start = walk_post(model)
        if not nodes:
            return model, False
        shape = model.get_tensor_shape(start)
        if shape is None or len(shape) != 2:
            raise UnsupportedLayerError(
                [
                    UnsupportedNode(
                        nodes[0].name or "<unnamed>",
                        nodes[0].op_type,
                        f"host tail ops need a (1, M) input, got {shape}: flatten first",
                    )
                ],
                stage="host tail",
            )
        post, data = [], start
        for node in nodes:
            idx = list(node.output).index(
                model.graph.output[0].name if node is nodes[-1] else _next_input(nodes, node)
            )
            post.append(host_node(model, node, data, idx).to_json())
            data = node.output[idx]
        for node in nodes:
            model.graph.node.remove(node)
        _drop_value_info(model, start)
        old = model.graph.output[0]
        model.graph.output.remove(old)
        model.graph.output.insert(0, helper.make_tensor_value_info(start, TensorProto.FLOAT, shape))
        _set_meta(model, output_post=post)
        return model, True


def _drop_value_info(model: ModelWrapper, name: str) -> None:
    """A tensor becoming a graph input/output must not keep a value_info entry as well."""
    for vi in [v for v in model.graph.value_info if v.name == name]:
        model.graph.value_info.remove(vi)


def _next_input(nodes: list, node) -> str:
    return nodes[nodes.index(node) + 1].input[0]


class BipolarToInt2(Transformation):
    """1-bit types as exact 2-bit integers for the RTL layers (run after streamlining).

    A bipolar MultiThreshold (one threshold t, ``-1 + 2 * [x >= t]``) becomes an INT2 one with
    the threshold twice and out_bias -1 (``-1 + [x >= t] + [x >= t]``); a BINARY one ({0, 1})
    is typed UINT2 (same values); bipolar weight initializers and a bipolar graph input are
    typed INT2 (same values). The MVAU then uses the integer datapath instead of
    XNOR-popcount, which has no RTL variant, and every activation is at least 2 bits wide.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        bipolar, int2 = DataType["BIPOLAR"], DataType["INT2"]
        changed = False
        for node in model.graph.node:
            if node.op_type != "MultiThreshold":
                continue
            inst = getCustomOp(node)
            out_dt = inst.get_nodeattr("out_dtype")
            thr = model.get_initializer(node.input[1])
            if thr is None or thr.shape[-1] != 1 or out_dt not in ("BIPOLAR", "BINARY"):
                continue
            scale, bias = inst.get_nodeattr("out_scale"), inst.get_nodeattr("out_bias")
            if out_dt == "BINARY" and scale == 1.0 and bias == 0.0:
                inst.set_nodeattr("out_dtype", "UINT2")
                model.set_tensor_datatype(node.output[0], DataType["UINT2"])
                changed = True
                continue
            if scale != 2.0 or bias != -1.0:  # not +-1 arithmetic: left as it is
                continue
            model.set_initializer(node.input[1], np.concatenate([thr, thr], axis=-1))
            inst.set_nodeattr("out_dtype", "INT2")
            inst.set_nodeattr("out_scale", 1.0)
            inst.set_nodeattr("out_bias", -1.0)
            model.set_tensor_datatype(node.output[0], int2)
            changed = True
        for init in model.graph.initializer:
            if model.get_tensor_datatype(init.name) == bipolar:
                model.set_tensor_datatype(init.name, int2)
                changed = True
        graph_in = model.graph.input[0].name
        if model.get_tensor_datatype(graph_in) == bipolar:
            model.set_tensor_datatype(graph_in, int2)
            changed = True
        return model, changed


def rtl_weight_type(dt: DataType) -> DataType:
    """The smallest weight type MVAU_rtl takes that holds every value of ``dt`` (signed, >= 2
    bits): UINTn -> INT(n+1), BINARY -> INT2, BIPOLAR -> INT2."""
    if dt.name in ("BIPOLAR", "BINARY"):
        return DataType["INT2"]
    if not dt.is_integer():
        return dt
    bits = dt.bitwidth() + (0 if dt.signed() else 1)
    return DataType[f"INT{max(2, bits)}"]


def require_signed_rtl_weights(node, inst) -> None:
    """PipelineError unless an ``MVAU_rtl`` node's weight type is signed.

    FINN's RTL MVU has no weight signedness parameter: it reads every weight as a signed
    ``WEIGHT_WIDTH``-bit integer, so an unsigned type (what MinimizeWeightBitWidth picks for
    one-sign weights, e.g. DetNet's ``mix_v`` with weights in {0, 1, 7} as UINT3) would turn 7
    into -1 silently. :class:`PreferRtl` widens such types; this is the export's last check.
    """
    if not node.op_type.startswith("MVAU") or not node.op_type.endswith("_rtl"):
        return
    wdt = DataType[inst.get_nodeattr("weightDataType")]
    if not wdt.signed():
        raise PipelineError(
            f"{node.name}: weight type {wdt.name} is unsigned, but MVAU_rtl reads weights as "
            f"signed (widen it to {rtl_weight_type(wdt).name} with hw.legalize.PreferRtl)"
        )


class PreferRtl(Transformation):
    """MVAU and Thresholding layers ask for RTL; MVAU weight types widened to what MVAU_rtl
    takes (see :func:`rtl_weight_type`). Run before SpecializeLayers and again after
    MinimizeWeightBitWidth (which may pick an unsigned type for one-sign weights)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            base = node.op_type.removesuffix("_rtl").removesuffix("_hls")
            if base not in ("MVAU", "Thresholding"):
                continue
            inst = getCustomOp(node)
            if not node.op_type.endswith("_rtl"):
                inst.set_nodeattr("preferred_impl_style", "rtl")
            if base != "MVAU":
                continue
            wdt = DataType[inst.get_nodeattr("weightDataType")]
            wide = rtl_weight_type(wdt)
            if wide != wdt:
                inst.set_nodeattr("weightDataType", wide.name)
                model.set_tensor_datatype(node.input[1], wide)
                changed = True
            changed |= _widen_rtl_accumulator(model, node, inst)
        return model, changed


def _widen_rtl_accumulator(model: ModelWrapper, node, inst) -> bool:
    """FINN's RTL MVU needs ``ACCU_WIDTH >= WEIGHT_WIDTH + ACTIVATION_WIDTH - signed(act)``
    (mvu.sv asserts it), but MinimizeAccumulatorWidth gives the exact range of the sums, which
    is narrower when few small weights meet unsigned inputs (the varying-channel DetNet's
    layer-1 ``mix_x``: one weight per row). Widening changes no value; a MVAU without
    activation streams its accumulator, so its output type and its consumers' input types
    follow."""
    if not inst.get_nodeattr("accDataType") or not inst.get_nodeattr("inputDataType"):
        return False
    acc = DataType[inst.get_nodeattr("accDataType")]
    wdt = DataType[inst.get_nodeattr("weightDataType")]
    adt = DataType[inst.get_nodeattr("inputDataType")]
    if not (acc.is_integer() and wdt.is_integer() and adt.is_integer()):
        return False
    need = wdt.bitwidth() + adt.bitwidth() - int(adt.signed())
    if acc.bitwidth() >= need:
        return False
    wide = DataType[f"{'INT' if acc.signed() else 'UINT'}{need}"]
    inst.set_nodeattr("accDataType", wide.name)
    if inst.get_nodeattr("noActivation") == 1:
        model.set_tensor_datatype(node.output[0], wide)
        if inst.get_nodeattr("outputDataType"):
            inst.set_nodeattr("outputDataType", wide.name)
        for consumer in model.find_consumers(node.output[0]) or []:
            if consumer.domain.startswith("finn") and "inputDataType" in [
                a.name for a in consumer.attribute
            ]:
                getCustomOp(consumer).set_nodeattr("inputDataType", wide.name)
    return True
