"""The host side of the accelerator: quantize the float input, scale the integer output.

Replicates qonnx's Quant exactly (divide by scale in float32, add zero point, clip, round with
the node's rounding mode) so the integers the RTL receives are the ones the golden model saw.
"""

from __future__ import annotations

import numpy as np

from qphy.errors import MalformedModelError

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
    lo = (-(2 ** (bits - 1)) + int(narrow)) if signed else 0
    hi = (2 ** (bits - 1) - 1) if signed else (2**bits - 1 - int(narrow))
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
