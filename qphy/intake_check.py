"""Checks of the host's head and post ops against qonnx's execution of the ORIGINAL graph.

The hw build cuts a user's float head (before the first quantizer) and post ops (Softmax,
ArgMax, ... after the last integer output) off the graph; the host runs them
(:mod:`qphy.host_ops`). These functions prove, on every golden vector, that the host's
integers are those of the original graph's input quantizer (bit for bit), and that the host's
post ops reproduce the original graph's outputs from the accelerator's integers.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qphy import host
from qphy.contracts import HostSpec
from qphy.errors import MalformedModelError
from qphy.host_ops import run_nodes

#: Softmax/Sigmoid computed by numpy vs onnxruntime: float32 rounding, nothing more.
POST_ATOL = 1e-5
#: Post ops whose outputs are indices: exact.
_EXACT_POST = frozenset({"ArgMax"})


def first_quantizer(model: ModelWrapper):
    """The first Quant/BipolarQuant (graph order) on data that depends on the graph input."""
    live = {model.graph.input[0].name}
    for node in model.graph.node:
        if not live.intersection(node.input):
            continue
        if node.op_type in ("Quant", "BipolarQuant") and node.input[0] in live:
            return node
        live.update(node.output)
    raise MalformedModelError("the reference graph has no input quantizer")


def verify_head(
    model: ModelWrapper, ctx: dict, inputs: np.ndarray, spec: HostSpec, first: int = 0
) -> dict:
    """The host's head + quantizer integers == the original graph's input quantizer's
    (``inputs`` are vectors ``first, first + 1, ...`` of the run: a chunk)."""
    quant = first_quantizer(model)
    value = np.asarray(ctx[quant.output[0]], dtype=np.float64)
    scale = np.asarray(ctx[quant.input[1]], dtype=np.float64)
    ref = np.round(value / scale).reshape(len(inputs), -1).astype(np.int64)
    x = run_nodes(np.asarray(inputs, dtype=np.float32), spec.input_head)
    mine = host.quantize(x, spec.input_quant).reshape(len(inputs), -1)
    if not np.array_equal(mine, ref):
        v, i = (int(k) for k in np.argwhere(mine != ref)[0])
        raise MalformedModelError(
            f"the host head ({', '.join(n.name for n in spec.input_head)}) gives input integer "
            f"{mine[v, i]} at vector {first + v}, index {i}; qonnx's execution of the original "
            f"graph gives {ref[v, i]} at {quant.name}"
        )
    return {
        "host_head": (
            "host runs "
            + " -> ".join(f"{n.op_type}({n.name})" for n in spec.input_head)
            + f" -> input quantizer; integers == qonnx's {quant.name} on every vector, bit-exact"
        )
    }


def verify_post(expected: np.ndarray, golden: np.ndarray, spec: HostSpec) -> dict:
    """The host's tail and post ops on the expected integers vs the original graph's outputs."""
    y = host.outputs(expected, spec).astype(np.float64)
    ref = np.asarray(golden, dtype=np.float64).reshape(len(golden), -1)
    exact = any(n.op_type in _EXACT_POST or n.output_index == 1 for n in spec.output_post)
    diff = float(np.max(np.abs(y - ref))) if y.size else 0.0
    if (exact and not np.array_equal(y, ref)) or diff > POST_ATOL:
        raise MalformedModelError(
            f"the host's output ops ({', '.join(n.name for n in spec.output_post)}) differ from "
            f"qonnx's outputs of the original graph by {diff:g}"
        )
    return {
        "host_post": (
            "host runs "
            + " -> ".join(f"{n.op_type}({n.name})" for n in spec.output_post)
            + (" exactly" if exact else f" (max |diff| to qonnx {diff:.3g})")
        )
    }
