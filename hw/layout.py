"""Frame re-orderings at the accelerator's boundary move to the host as index permutations.

Lowering convolutions to NHWC leaves a ``Transpose`` (NCHW -> NHWC) on the graph input and, for
the conv encoders, ``Transpose`` (NHWC -> NCHW) + ``Flatten`` on the output. In hardware they
would only re-order the elements of one frame, which the host does for free while it packs or
unpacks the stream. They are cut off the graph here and described by permutations of the
flattened (batch-1) frame:

* input: ``hw_in[i] = x_flat[input_perm[i]]`` (``x_flat``: the model's input, C-order flat);
* output: ``y_flat[j] = hw_out[output_perm[j]]`` (``y_flat``: the model's output, flat).

Scalar Mul/Add/Sub/Div by a constant commute with a permutation, so such nodes between or after
the output layout ops stay in the graph (they become the host's output tail later).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from hw.checks import FPGADATAFLOW_DOMAIN, HOST_TAIL_OPS, LAYOUT_OPS
from qphy.errors import UnsupportedLayerError, UnsupportedNode


def _apply_layout(model: ModelWrapper, node, idx: np.ndarray) -> np.ndarray:
    """Run one layout op on an index tensor (its input shape)."""
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return np.transpose(idx, perm)
    return idx.reshape(model.get_tensor_shape(node.output[0]))


def _is_scalar_const(model: ModelWrapper, node) -> bool:
    if node.op_type not in HOST_TAIL_OPS or len(node.input) != 2:
        return False
    const = model.get_initializer(node.input[1])
    return const is not None and np.asarray(const).size == 1


def strip_input_layout(model: ModelWrapper) -> tuple[ModelWrapper, list[int] | None]:
    """Remove the layout ops that directly follow the graph input; returns the input perm."""
    model = model.transform(InferShapes())
    inp = model.graph.input[0]
    shape = model.get_tensor_shape(inp.name)
    dtype = model.get_tensor_datatype(inp.name)
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    stripped = False
    name = inp.name
    while True:
        consumers = model.find_consumers(name) or []
        if len(consumers) != 1 or consumers[0].op_type not in LAYOUT_OPS:
            break
        node = consumers[0]
        idx = _apply_layout(model, node, idx)
        name = node.output[0]
        model.graph.node.remove(node)
        stripped = True
    if not stripped:
        return model, None
    new_shape = model.get_tensor_shape(name)
    model.graph.input.remove(inp)
    model.graph.input.insert(
        0, helper.make_tensor_value_info(name, inp.type.tensor_type.elem_type, new_shape)
    )
    vi = [v for v in model.graph.value_info if v.name == name]
    for v in vi:
        model.graph.value_info.remove(v)
    model.set_tensor_datatype(name, dtype)
    return model, idx.reshape(-1).tolist()


def strip_output_layout(model: ModelWrapper) -> tuple[ModelWrapper, list[int] | None]:
    """Remove the layout ops after the last HW layer; returns the output perm.

    The nodes after the last HW layer must form a chain. Scalar constant Mul/Add/Sub/Div in it
    are kept (re-chained in order, now on the HW output's shape); any other node next to a
    layout op would need its constant permuted too and is refused.
    """
    model = model.transform(InferShapes())
    nodes = list(model.graph.node)
    last_hw = max((k for k, n in enumerate(nodes) if n.domain == FPGADATAFLOW_DOMAIN), default=-1)
    tail = nodes[last_hw + 1 :]
    if not any(n.op_type in LAYOUT_OPS for n in tail):
        return model, None
    bad = [
        UnsupportedNode(
            n.name,
            n.op_type,
            "only scalar scale/bias ops may follow the accelerator together with an output "
            "re-ordering (Transpose/Flatten/Reshape)",
        )
        for k, n in enumerate(tail)
        if not (n.op_type in LAYOUT_OPS or _is_scalar_const(model, n))
        or (k and n.input[0] != tail[k - 1].output[0])
    ]
    if bad:
        raise UnsupportedLayerError(bad, stage="moving the output layout to the host")
    hw_out = tail[0].input[0]
    shape = model.get_tensor_shape(hw_out)
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    for node in tail:
        if node.op_type in LAYOUT_OPS:
            idx = _apply_layout(model, node, idx)
    out_name = model.graph.output[0].name
    out_elem = model.graph.output[0].type.tensor_type.elem_type
    kept = [n for n in tail if n.op_type not in LAYOUT_OPS]
    for node in tail:
        if node.op_type in LAYOUT_OPS:
            model.graph.node.remove(node)
    prev = hw_out
    for node in kept:
        node.input[0] = prev
        prev = node.output[0]
    if kept:
        kept[-1].output[0] = out_name
    else:
        model.find_producer(hw_out).output[0] = out_name
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(out_name, out_elem, shape))
    for node in kept[:-1]:
        model.set_tensor_shape(node.output[0], shape)
    return model, idx.reshape(-1).tolist()
