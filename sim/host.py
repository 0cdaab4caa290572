"""The host side of the accelerator: quantize the float input, scale the integer output.

Replicates qonnx's Quant exactly (divide by scale in float32, add zero point, clip, round with
the node's rounding mode) so the integers the RTL receives are the ones the golden model saw.
Frame re-orderings cut off the graph by the hw stage (``input_perm``/``output_perm`` in the
host metadata, see hw/layout.py) are applied here: ``hw_in[i] = x_flat[input_perm[i]]`` and
``y_flat[j] = hw_out[output_perm[j]]``.
"""

from __future__ import annotations

import numpy as np

from qphy.errors import MalformedModelError
from qphy.variants import int_range

_ROUNDING = {
    "ROUND": np.round,  # half to even, as torch.round and qonnx
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "ROUND_TO_ZERO": np.fix,
}


def quantize_input(y: np.ndarray, quant: dict) -> np.ndarray:
    """Float inputs -> integers as the exported input Quant node computes them."""
    scale = np.asarray(quant["scale"], dtype=np.float32)
    bits, signed, narrow = int(quant["bits"]), bool(quant["signed"]), bool(quant["narrow"])
    mode = quant.get("rounding_mode", "ROUND").upper()
    if mode not in _ROUNDING:
        raise MalformedModelError(f"input Quant rounding_mode {mode} is not supported")
    lo, hi = int_range(bits, signed, narrow)
    q = np.asarray(y, dtype=np.float32) / scale
    q = np.clip(q, lo, hi)
    return _ROUNDING[mode](q).astype(np.int64)


def apply_output_tail(ints: np.ndarray, tail: list[dict]) -> np.ndarray:
    """The float ops kept on the host after the dataflow partition (e.g. the output scale)."""
    out = np.asarray(ints, dtype=np.float32)
    for op in tail:
        c = np.asarray(op["const"], dtype=np.float32)
        out = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[
            op["op_type"]
        ](out, c).astype(np.float32)
    return out


def expected_integers(golden: np.ndarray, tail: list[dict]) -> np.ndarray:
    """Golden float outputs -> the integers the accelerator must produce.

    Inverts the host tail (a scale and optional bias) and checks the inversion is exact: the
    tail applied to the recovered integers must reproduce every golden value bit for bit.
    """
    golden = np.asarray(golden, dtype=np.float32)
    val = golden.astype(np.float64)
    for op in reversed(tail):
        c = np.asarray(op["const"], dtype=np.float64)
        val = {"Mul": np.divide, "Add": np.subtract, "Sub": np.add, "Div": np.multiply}[
            op["op_type"]
        ](val, c)
    ints = np.round(val).astype(np.int64)
    if not np.array_equal(apply_output_tail(ints, tail), golden):
        bad = np.argwhere(apply_output_tail(ints, tail) != golden)[0]
        raise MalformedModelError(
            f"golden output at vector {bad[0]}, index {bad[1]} is not an integer times the "
            "output scale: the golden file does not belong to this model"
        )
    return ints


def hw_inputs(x: np.ndarray, host: dict) -> np.ndarray:
    """Float model inputs ``(n, ...)`` -> the integer vectors the accelerator receives, in its
    stream order: quantize (in the model's own shape, so per-channel scales broadcast), flatten
    each vector, then apply the input permutation."""
    x = np.asarray(x, dtype=np.float32)
    shape = host.get("input_shape")
    if shape is not None and x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
        x = x.reshape(len(x), *shape)
    ints = quantize_input(x, host["input_quant"]).reshape(len(x), -1)
    perm = host.get("input_perm")
    return ints if perm is None else ints[:, np.asarray(perm)]


def hw_outputs_order(y: np.ndarray, host: dict) -> np.ndarray:
    """Model-order output integers ``(n, M)`` -> the accelerator's stream order."""
    perm = host.get("output_perm")
    if perm is None:
        return y
    out = np.empty_like(y)
    out[:, np.asarray(perm)] = y
    return out


def model_outputs_order(hw: np.ndarray, host: dict) -> np.ndarray:
    """The accelerator's output integers (stream order) -> model order (inverse of the above)."""
    perm = host.get("output_perm")
    return hw if perm is None else hw[:, np.asarray(perm)]
