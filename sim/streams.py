"""Packing integer vectors into AXI-stream beats and back (FINN's layout: element 0 in the LSBs)."""

from __future__ import annotations

import numpy as np


def pack_frame(values: np.ndarray, elem_bits: int, elems_per_beat: int) -> list[int]:
    """One frame (1-D ints) -> beat words; element i of a beat sits at bits [i*b, (i+1)*b)."""
    mask = (1 << elem_bits) - 1
    flat = [int(v) & mask for v in np.asarray(values).reshape(-1)]
    beats = []
    for start in range(0, len(flat), elems_per_beat):
        word = 0
        for i, v in enumerate(flat[start : start + elems_per_beat]):
            word |= v << (i * elem_bits)
        beats.append(word)
    return beats


def unpack_beats(beats: list[int], elem_bits: int, elems_per_beat: int, signed: bool) -> np.ndarray:
    """Beat words -> 1-D int64 elements (sign-extended when ``signed``)."""
    mask = (1 << elem_bits) - 1
    out = np.empty(len(beats) * elems_per_beat, dtype=np.int64)
    k = 0
    for word in beats:
        for i in range(elems_per_beat):
            v = (word >> (i * elem_bits)) & mask
            if signed and v >> (elem_bits - 1):
                v -= 1 << elem_bits
            out[k] = v
            k += 1
    return out
