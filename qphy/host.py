"""The host runtime: numpy only (no torch, brevitas or finn), numpy 1.x and 2.x alike.

It implements a :class:`~qphy.contracts.HostSpec` (what runs on the CPU around the accelerator)
and the AXI-stream packing, so that the RTL simulation and the board driver feed the
accelerator and read it back with the same code:

    raw --pre--> model input --quantize--> ints --flatten, perm--> stream ints --pack--> beats
    beats --unpack--> stream ints --perm--> model-order ints --tail--> model output --decide-->

Quantization replicates qonnx's ``Quant`` (divide by the scale in float32, clip, round with the
node's rounding mode), so the integers the hardware receives are the ones the golden model saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qphy.contracts import HostOp, HostSpec, QuantSpec, StreamSpec
from qphy.errors import MalformedModelError
from qphy.host_ops import run_nodes
from qphy.variants import int_range

_ROUNDING = {
    "ROUND": np.round,  # half to even, as torch.round and qonnx
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "ROUND_TO_ZERO": np.fix,
}
_OPS = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}
_INVERSE = {"Mul": np.divide, "Add": np.subtract, "Sub": np.add, "Div": np.multiply}


def apply_ops(x: np.ndarray, ops: Sequence[HostOp]) -> np.ndarray:
    """Elementwise float32 ops with constants, in order (as the ONNX graph computes them)."""
    out = np.asarray(x, dtype=np.float32)
    for op in ops:
        if op.op_type not in _OPS:
            raise MalformedModelError(f"host op {op.op_type} is not one of {sorted(_OPS)}")
        out = _OPS[op.op_type](out, np.asarray(op.const, dtype=np.float32)).astype(np.float32)
    return out


def quantize(x: np.ndarray, quant: QuantSpec) -> np.ndarray:
    """Float values -> the integers of the quantizer ``quant`` (int64)."""
    mode = quant.rounding_mode.upper()
    if mode == "BIPOLAR":  # qonnx's BipolarQuant: sign of x / scale, 0 -> +1
        q = np.asarray(x, dtype=np.float32) / np.asarray(quant.scale, dtype=np.float32)
        return np.where(q >= 0, 1, -1).astype(np.int64)
    if mode not in _ROUNDING:
        raise MalformedModelError(f"input Quant rounding_mode {mode} is not supported")
    lo, hi = int_range(int(quant.bits), bool(quant.signed), bool(quant.narrow))
    q = np.asarray(x, dtype=np.float32) / np.asarray(quant.scale, dtype=np.float32)
    return _ROUNDING[mode](np.clip(q, lo, hi)).astype(np.int64)


def preprocess(raw: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Raw data -> model inputs (the spec's ``input_pre`` ops, e.g. CSI centring)."""
    return apply_ops(raw, spec.input_pre)


def stream_inputs(x: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Model inputs ``(n, ...)`` -> the integer vectors the accelerator receives ``(n, elems)``
    in stream order: the model's float head (if any), quantize in the quantizer's own shape
    (per-channel scales broadcast), flatten, permute."""
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(spec.input_shape)
    if x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
        x = x.reshape((len(x), *shape))
    if x.shape[1:] != shape:
        raise MalformedModelError(f"inputs of shape {x.shape[1:]} given, the model takes {shape}")
    if spec.input_head:
        x = run_nodes(x, spec.input_head)
    ints = quantize(x, spec.input_quant).reshape(len(x), -1)
    return ints if spec.input_perm is None else ints[:, np.asarray(spec.input_perm)]


def model_order(hw: np.ndarray, spec: HostSpec) -> np.ndarray:
    """The accelerator's output integers (stream order) -> model order."""
    return hw if spec.output_perm is None else hw[:, np.asarray(spec.output_perm)]


def stream_order(y: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Model-order output integers ``(n, M)`` -> the accelerator's stream order."""
    if spec.output_perm is None:
        return y
    out = np.empty_like(y)
    out[:, np.asarray(spec.output_perm)] = y
    return out


def outputs(hw: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Accelerator integers (stream order) -> the model's outputs (tail and post ops applied)."""
    y = apply_ops(model_order(np.asarray(hw), spec), spec.output_tail)
    return run_nodes(y, spec.output_post).reshape(len(y), -1) if spec.output_post else y


def decide(y: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Hard decisions on model outputs (``sign``: +1/-1 BPSK symbols, 0 -> +1)."""
    if spec.decision is None:
        return y
    if spec.decision == "sign":
        return np.where(np.asarray(y) >= 0, 1, -1).astype(np.int8)
    raise MalformedModelError(f"unknown host decision {spec.decision!r}")


def expected_integers(golden: np.ndarray, spec: HostSpec) -> np.ndarray:
    """Golden float outputs ``(n, M)`` -> the integers the accelerator must produce, in stream
    order.

    Inverts the output tail (scale and optional bias) and checks the inversion is exact: the
    tail applied to the recovered integers must reproduce every golden value bit for bit.
    """
    golden = np.asarray(golden, dtype=np.float32).reshape(len(golden), -1)
    val = golden.astype(np.float64)
    for op in reversed(spec.output_tail):
        val = _INVERSE[op.op_type](val, np.asarray(op.const, dtype=np.float64))
    ints = np.round(val).astype(np.int64)
    back = apply_ops(ints, spec.output_tail)
    if not np.array_equal(back, golden):
        bad = np.argwhere(back != golden)[0]
        raise MalformedModelError(
            f"golden output at vector {bad[0]}, index {bad[1]} is not an integer times the "
            "output scale: the golden outputs were not computed by this model"
        )
    return stream_order(ints, spec)


# --- AXI-stream packing (FINN's layout: element 0 of a beat in its least significant bits) ---


def pack_beats(ints: np.ndarray, stream: StreamSpec) -> np.ndarray:
    """Integer frames ``(n, elems)`` -> a uint8 buffer ``(n * beats, beat_bytes)``: each beat
    little-endian, padded to whole bytes, as a DMA engine or a Verilator harness reads it."""
    ints = np.asarray(ints, dtype=np.int64)
    n, b = len(ints), int(stream.elem_bits)
    need = stream.elems_per_frame
    if ints.shape[1] > need:
        raise MalformedModelError(f"{ints.shape[1]} elements per frame, the stream takes {need}")
    if ints.shape[1] < need:  # the last beat is padded with zeros
        ints = np.concatenate([ints, np.zeros((n, need - ints.shape[1]), np.int64)], axis=1)
    u = (ints & ((1 << b) - 1)).astype(np.uint64).reshape(-1, stream.elems_per_beat)
    bits = ((u[:, :, None] >> np.arange(b, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    bits = bits.reshape(len(u), -1)
    pad = stream.beat_bytes * 8 - bits.shape[1]
    if pad:
        bits = np.concatenate([bits, np.zeros((len(u), pad), np.uint8)], axis=1)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_beats(buf: np.ndarray, stream: StreamSpec, n_elems: int | None = None) -> np.ndarray:
    """The inverse of :func:`pack_beats`: ``(n * beats, beat_bytes)`` uint8 -> ``(n, elems)``
    int64 (sign-extended for signed streams), cut to ``n_elems`` per frame."""
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1, stream.beat_bytes)
    if len(buf) % stream.beats_per_frame:
        raise MalformedModelError(
            f"{len(buf)} beats is not a whole number of {stream.beats_per_frame}-beat frames"
        )
    b, per = int(stream.elem_bits), int(stream.elems_per_beat)
    bits = np.unpackbits(buf, axis=1, bitorder="little")[:, : b * per].reshape(len(buf), per, b)
    vals = (bits.astype(np.int64) << np.arange(b, dtype=np.int64)).sum(axis=2)
    if stream.signed:
        vals = np.where(vals >= 1 << (b - 1), vals - (1 << b), vals)
    frames = vals.reshape(len(buf) // stream.beats_per_frame, stream.elems_per_frame)
    return frames if n_elems is None else frames[:, :n_elems]


def beats_to_words(buf: np.ndarray) -> list[int]:
    """uint8 beats ``(beats, beat_bytes)`` -> one Python int per beat (for cocotbext-axi)."""
    return [int.from_bytes(row.tobytes(), "little") for row in np.asarray(buf, dtype=np.uint8)]


def words_to_beats(words: Sequence[int], stream: StreamSpec) -> np.ndarray:
    """Python int per beat -> uint8 beats ``(beats, beat_bytes)``."""
    nbytes = stream.beat_bytes
    raw = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, nbytes)
