"""Where a user's QONNX graph splits into host head, accelerator and host tail (qonnx, no finn).

    graph input --head (float: shape ops, normalisation)--> first quantizer --accelerator-->
    last integer output (+ scale/bias) --post (Softmax, ArgMax, ...)--> graph output

The hw build cuts the head and the post nodes off (:mod:`hw.legalize`); the flow uses the same
walks on the ORIGINAL graph to check the host's integers against qonnx's execution of it.
Also parses ``--input-precision`` (hls4ml's ``ap_fixed<W,I>`` notation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qphy.errors import ConfigError, UnsupportedLayerError, UnsupportedNode
from qphy.host_ops import HEAD_OPS, POST_OPS

QUANT_OPS = ("Quant", "BipolarQuant")
LINEAR_OPS = ("MatMul", "Gemm", "Conv")
#: Widest input the RTL layers take (MVAU_rtl / Thresholding_rtl as qphy builds them).
MAX_INPUT_BITS = 8

_NO_QUANT_HINT = (
    "the graph input must go through a Quant node: add an input quantizer (QuantIdentity), or "
    "declare the input's precision with --input-precision fixed<W,I> | ufixed<W,I> | int<W> "
    "(as hls4ml's ap_fixed)"
)


class FoldStaticShapes(Transformation):
    """``Shape(x)`` with x's shape known -> an int64 constant (then FoldConstants folds the
    Gather/Unsqueeze/Concat chain after it). Shapes hold the batch size: fold a graph at the
    batch size it is executed at."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in [n for n in model.graph.node if n.op_type == "Shape"]:
            shape = model.get_tensor_shape(node.input[0])
            if shape is None or any(not isinstance(d, int) or d <= 0 for d in shape):
                continue
            model.set_initializer(node.output[0], np.asarray(shape, dtype=np.int64))
            model.graph.node.remove(node)
            changed = True
        return model, changed


def fold_shapes(model: ModelWrapper) -> ModelWrapper:
    """Static shapes folded into constants, and the constant chains after them."""
    from qonnx.transformation.fold_constants import FoldConstants  # noqa: PLC0415
    from qonnx.transformation.infer_shapes import InferShapes  # noqa: PLC0415

    if not any(n.op_type == "Shape" for n in model.graph.node):
        return model
    model = model.transform(FoldStaticShapes())
    model = model.transform(FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "Trunc"]))
    return model.transform(InferShapes())


def batch_reshapes(model: ModelWrapper, n: int) -> ModelWrapper:
    """Constant Reshape targets ``(1, ...)`` of a batch-1 graph -> ``(n, ...)``."""
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        shape = model.get_initializer(node.input[1])
        if shape is None or shape.ndim != 1 or len(shape) < 2 or int(shape[0]) != 1:
            continue
        name = f"{node.name or node.output[0]}_batch_shape"
        model.set_initializer(name, np.asarray([n, *shape[1:]], dtype=np.int64))
        node.input[1] = name
    return model


@dataclass(frozen=True)
class Head:
    """The float nodes from the graph input to the first quantizer (in order), the quantizer,
    and the node the walk stopped at when there is none (a linear layer without input
    quantizer, or an op the host head cannot run)."""

    nodes: tuple
    quant: object | None
    stop: object | None


def _is_const(model: ModelWrapper, name: str) -> bool:
    return name == "" or model.get_initializer(name) is not None


def _attr(node, name: str, default):
    from onnx import helper  # noqa: PLC0415

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def batch_axis_problem(model: ModelWrapper, node) -> str | None:
    """Why a head node cannot run per vector (it touches the batch axis 0), or None."""
    if node.op_type == "Transpose" and list(_attr(node, "perm", [1]))[:1] != [0]:
        return "a Transpose that moves the batch axis cannot run per vector on the host"
    if node.op_type == "Flatten" and int(_attr(node, "axis", 1)) != 1:
        return "only Flatten(axis=1) runs per vector on the host"
    if node.op_type in ("Squeeze", "Unsqueeze"):
        axes = _attr(node, "axes", None)
        if (
            axes is None
            and len(node.input) > 1
            and model.get_initializer(node.input[1]) is not None
        ):
            axes = model.get_initializer(node.input[1]).ravel().tolist()
        if axes is None or 0 in [int(a) for a in axes]:
            return f"a {node.op_type} needs constant axes other than the batch axis 0"
    return None


def walk_head(model: ModelWrapper) -> Head:
    """Follow the graph input through single-consumer float ops with constant operands."""
    name, nodes = model.graph.input[0].name, []
    while True:
        consumers = model.find_consumers(name) or []
        if len(consumers) != 1:
            return Head(tuple(nodes), None, consumers[0] if consumers else None)
        node = consumers[0]
        if node.op_type in QUANT_OPS and node.input[0] == name:
            return Head(tuple(nodes), node, None)
        others = [t for t in node.input if t != name]
        if node.op_type not in HEAD_OPS or not all(_is_const(model, t) for t in others):
            return Head(tuple(nodes), None, node)
        if batch_axis_problem(model, node) is not None:
            return Head(tuple(nodes), None, node)
        nodes.append(node)
        name = node.output[0]


def check_head(model: ModelWrapper, head: Head) -> None:
    """Refuse, by node name, a graph whose input reaches no quantizer through host-able ops."""
    if head.quant is not None:
        return
    node = head.stop
    if node is None:
        raise UnsupportedLayerError(
            [UnsupportedNode(model.graph.input[0].name, "input", "the graph input has no user")],
            stage="host head",
        )
    if node.op_type in LINEAR_OPS:
        hint = _NO_QUANT_HINT
    elif node.op_type in HEAD_OPS and batch_axis_problem(model, node):
        hint = batch_axis_problem(model, node)
    else:
        hint = (
            "cannot run in the host head before the input quantizer (the head runs "
            + ", ".join(sorted(HEAD_OPS))
            + " with constant operands, one consumer each)"
        )
    raise UnsupportedLayerError(
        [UnsupportedNode(node.name or "<unnamed>", node.op_type, hint)], stage="host head"
    )


def walk_post(model: ModelWrapper) -> tuple[list, str]:
    """The trailing host ops (Softmax, ArgMax, ...) in graph order and the tensor they start
    from (the accelerator side's output)."""
    name, nodes = model.graph.output[0].name, []
    while True:
        node = model.find_producer(name)
        if node is None or node.op_type not in POST_OPS:
            return list(reversed(nodes)), name
        if not all(_is_const(model, t) for t in node.input[1:]):
            return list(reversed(nodes)), name
        nodes.append(node)
        name = node.input[0]


@dataclass(frozen=True)
class InputPrecision:
    """A declared input precision: ``bits`` total (sign included), ``scale`` = 2**-(W-I)."""

    text: str
    bits: int
    signed: bool
    scale: float

    @property
    def int_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


_PRECISION = re.compile(r"^(u?fixed)<\s*(\d+)\s*,\s*(-?\d+)\s*>$|^(u?int)<\s*(\d+)\s*>$")


def parse_input_precision(text: str) -> InputPrecision:
    """``fixed<W,I>`` / ``ufixed<W,I>`` / ``int<W>`` / ``uint<W>`` -> InputPrecision.

    Raises ConfigError for anything else, and for W outside 2..MAX_INPUT_BITS (the widest input
    the RTL layers take).
    """
    m = _PRECISION.match(text.strip().replace("ap_", ""))
    if m is None:
        raise ConfigError(
            f"--input-precision '{text}': expected fixed<W,I>, ufixed<W,I>, int<W> or uint<W>"
        )
    if m.group(1):
        kind, width, integer = m.group(1), int(m.group(2)), int(m.group(3))
        signed, scale = kind == "fixed", 2.0 ** -(width - integer)
    else:
        kind, width = m.group(4), int(m.group(5))
        signed, scale = kind == "int", 1.0
    if not 2 <= width <= MAX_INPUT_BITS:
        raise ConfigError(
            f"--input-precision '{text}': {width} bits; the RTL layers take 2..{MAX_INPUT_BITS}-"
            "bit inputs"
        )
    return InputPrecision(text, width, signed, scale)
