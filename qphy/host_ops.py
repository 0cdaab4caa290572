"""The float head and tail of a model on the host: numpy versions of the ONNX ops they may hold.

A user's QONNX file may do float work before its first quantizer (a flatten chain, input
normalisation, a +-1 re-encoding) and after its last integer output (softmax, argmax). The hw
build cuts these nodes off the graph (:mod:`hw.legalize`) and records each as a
:class:`~qphy.contracts.HostNode`; this module runs them, numpy only, for the RTL simulation
and the board driver alike. Tensors keep their batch dimension (axis 0) first; constant
shapes recorded from the batch-1 graph are applied per vector.

Arithmetic is float32 in ONNX's operand order, so the elementwise head gives the bits qonnx's
execution of the original graph gives (the flow checks this on every golden vector).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qphy.contracts import HostNode
from qphy.errors import MalformedModelError

#: Ops allowed between the graph input and the first quantizer.
HEAD_OPS = frozenset(
    {
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Mul",
        "Add",
        "Sub",
        "Div",
        "BatchNormalization",
    }
)
#: Ops allowed after the last integer output (and its scale/bias).
POST_OPS = frozenset({"Softmax", "LogSoftmax", "ArgMax", "TopK", "Sigmoid"})


def _const(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def _binary(fn: Callable) -> Callable:
    def run(x: np.ndarray, node: HostNode) -> np.ndarray:
        a, b = (x if v is None else _const(v) for v in node.inputs)
        return fn(a, b).astype(np.float32)

    return run


def _reshape(x: np.ndarray, node: HostNode) -> np.ndarray:
    shape = [int(d) for d in np.asarray(node.inputs[1]).ravel()]
    # The batch-1 graph's leading 1 (or 0/-1) is the batch: keep it per vector.
    dims = [len(x)] + [x.shape[i] if d == 0 else d for i, d in enumerate(shape) if i > 0]
    return x.reshape(dims)


def _flatten(x: np.ndarray, node: HostNode) -> np.ndarray:
    return x.reshape(len(x), -1)


def _transpose(x: np.ndarray, node: HostNode) -> np.ndarray:
    perm = node.attrs.get("perm") or list(reversed(range(x.ndim)))
    return np.transpose(x, perm)


def _axes(x: np.ndarray, node: HostNode) -> list[int]:
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    if len(node.inputs) > 1:
        return [int(a) for a in np.asarray(node.inputs[1]).ravel()]
    return []


def _squeeze(x: np.ndarray, node: HostNode) -> np.ndarray:
    axes = _axes(x, node) or [i for i in range(1, x.ndim) if x.shape[i] == 1]
    return np.squeeze(x, axis=tuple(axes))


def _unsqueeze(x: np.ndarray, node: HostNode) -> np.ndarray:
    out = x
    for a in sorted(a % (x.ndim + len(_axes(x, node))) for a in _axes(x, node)):
        out = np.expand_dims(out, a)
    return out


def _batchnorm(x: np.ndarray, node: HostNode) -> np.ndarray:
    """ONNX BatchNormalization (inference) in onnxruntime's order: a per-channel scale and bias
    computed first, then ``x * scale + bias``."""
    gamma, beta, mean, var = (_const(v) for v in node.inputs[1:5])
    eps = np.float32(node.attrs.get("epsilon", 1e-5))
    inv_std = (np.float32(1) / np.sqrt(var + eps)).astype(np.float32)
    scale = (inv_std * gamma).astype(np.float32)
    bias = (beta - mean * scale).astype(np.float32)
    shape = [1, -1] + [1] * (x.ndim - 2)
    return (x * scale.reshape(shape) + bias.reshape(shape)).astype(np.float32)


def _softmax(x: np.ndarray, node: HostNode, log: bool = False) -> np.ndarray:
    axis = int(node.attrs.get("axis", -1 if node.attrs.get("_opset", 13) >= 13 else 1))
    v = x.astype(np.float32)
    if node.attrs.get("_opset", 13) < 13:  # older opsets: coerce to 2-D at ``axis``
        shape = v.shape
        v = v.reshape(int(np.prod(shape[:axis])), -1)
        out = _softmax_axis(v, -1, log)
        return out.reshape(shape)
    return _softmax_axis(v, axis, log)


def _softmax_axis(v: np.ndarray, axis: int, log: bool) -> np.ndarray:
    shifted = v - np.max(v, axis=axis, keepdims=True)
    e = np.exp(shifted)
    s = np.sum(e, axis=axis, keepdims=True)
    return (shifted - np.log(s) if log else e / s).astype(np.float32)


def _sigmoid(x: np.ndarray, node: HostNode) -> np.ndarray:
    return (np.float32(1) / (np.float32(1) + np.exp(-x.astype(np.float32)))).astype(np.float32)


def _argmax(x: np.ndarray, node: HostNode) -> np.ndarray:
    axis = int(node.attrs.get("axis", 0))
    v = np.flip(x, axis=axis) if node.attrs.get("select_last_index", 0) else x
    idx = np.argmax(v, axis=axis)
    if node.attrs.get("select_last_index", 0):
        idx = x.shape[axis] - 1 - idx
    return np.expand_dims(idx, axis) if node.attrs.get("keepdims", 1) else idx


def _topk(x: np.ndarray, node: HostNode) -> np.ndarray:
    axis = int(node.attrs.get("axis", -1))
    k = int(np.asarray(node.inputs[1]).ravel()[0]) if len(node.inputs) > 1 else node.attrs["k"]
    largest = int(node.attrs.get("largest", 1))
    # Stable sort on the key: ties keep the lower index first, as onnxruntime does.
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    if node.output_index == 1:
        return idx.astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis)


_RUN: dict[str, Callable] = {
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Identity": lambda x, node: x,
    "Mul": _binary(np.multiply),
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Div": _binary(np.divide),
    "BatchNormalization": _batchnorm,
    "Softmax": _softmax,
    "LogSoftmax": lambda x, node: _softmax(x, node, log=True),
    "ArgMax": _argmax,
    "TopK": _topk,
    "Sigmoid": _sigmoid,
}


def run_nodes(x: np.ndarray, nodes: Sequence[HostNode]) -> np.ndarray:
    """Apply ``nodes`` in order to the batch ``x`` (float32 in, the last node's output out)."""
    out = np.asarray(x, dtype=np.float32)
    for node in nodes:
        fn = _RUN.get(node.op_type)
        if fn is None:
            raise MalformedModelError(
                f"host node {node.name} ({node.op_type}) is not one of {sorted(_RUN)}"
            )
        out = fn(out, node)
    return out
