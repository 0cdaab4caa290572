"""HDL generation of qphy's stream layers, one function per layer (pure python, no finn).

Each returns the SystemVerilog of a wrapper module ``name`` (FINN-style ports, see
:mod:`hw.layers.wrapper`) around the layer's module in ``hw/rtl``; PE/SIMD folding is the number
of lanes per beat. The custom ops (:mod:`hw.layers.ops`) call these from ``generate_hdl``;
the layer benches call them directly.
"""

from __future__ import annotations

from hw.layers.wrapper import Lanes, wrapper_sv


def _pad8(bits: int) -> int:
    return max(8, -(-bits // 8) * 8)


def fork_sv(name: str, pe: int, bits: int, n_out: int) -> str:
    """Stream fork: one input, ``n_out`` identical outputs (qphy_fork)."""
    w = _pad8(pe * bits)
    return wrapper_sv(
        name,
        "qphy_fork",
        {"N_OUT": n_out, "WIDTH": pe * bits},
        [Lanes("s_axis", 0, pe, bits, bits, w)],
        [Lanes("m_axis", j, pe, bits, bits, w) for j in range(n_out)],
    )


def add_sv(
    name: str, pe: int, a_bits: int, a_signed: bool, b_bits: int, b_signed: bool, out_bits: int
) -> str:
    """Elementwise add of two integer streams (qphy_add)."""
    return wrapper_sv(
        name,
        "qphy_add",
        {
            "PE": pe,
            "A_BITS": a_bits,
            "B_BITS": b_bits,
            "OUT_BITS": out_bits,
            "A_SIGNED": a_signed,
            "B_SIGNED": b_signed,
        },
        [
            Lanes("s_axis_a", 0, pe, a_bits, a_bits, _pad8(pe * a_bits)),
            Lanes("s_axis_b", 0, pe, b_bits, b_bits, _pad8(pe * b_bits)),
        ],
        [Lanes("m_axis", 0, pe, out_bits, out_bits, _pad8(pe * out_bits))],
    )


def concat_sv(
    name: str, simd: int, in_bits: list[int], in_signed: list[bool], folds: list[int], out_bits: int
) -> str:
    """Channel concat of len(folds) streams (qphy_concat); folds = channels / SIMD per input."""
    mx = max(in_bits)
    return wrapper_sv(
        name,
        "qphy_concat",
        {
            "N_IN": len(folds),
            "SIMD": simd,
            "OUT_BITS": out_bits,
            "IN_BITS": list(in_bits),
            "IN_SIGNED": list(in_signed),
            "FOLDS": list(folds),
            "MAX_IN_BITS": mx,
        },
        [Lanes("s_axis", i, simd, b, mx, _pad8(simd * b)) for i, b in enumerate(in_bits)],
        [Lanes("m_axis", 0, simd, out_bits, out_bits, _pad8(simd * out_bits))],
    )


def split_sv(name: str, simd: int, bits: int, folds: list[int]) -> str:
    """Channel split into len(folds) streams (qphy_split)."""
    w = _pad8(simd * bits)
    return wrapper_sv(
        name,
        "qphy_split",
        {"N_OUT": len(folds), "WIDTH": simd * bits, "FOLDS": list(folds)},
        [Lanes("s_axis", 0, simd, bits, bits, w)],
        [Lanes("m_axis", j, simd, bits, bits, w) for j in range(len(folds))],
    )


def pool_sv(name: str, pe: int, bits: int, signed: bool, kernel_elems: int) -> str:
    """Window max pool behind a depthwise SWG (qphy_pool)."""
    w = _pad8(pe * bits)
    return wrapper_sv(
        name,
        "qphy_pool",
        {"PE": pe, "BITS": bits, "SIGNED": signed, "K": kernel_elems},
        [Lanes("s_axis", 0, pe, bits, bits, w)],
        [Lanes("m_axis", 0, pe, bits, bits, w)],
    )


def accpool_sv(
    name: str, pe: int, in_bits: int, out_bits: int, signed: bool, cf: int, pixels: int
) -> str:
    """Global sum pool (qphy_accpool); cf = channels / PE."""
    return wrapper_sv(
        name,
        "qphy_accpool",
        {
            "PE": pe,
            "IN_BITS": in_bits,
            "OUT_BITS": out_bits,
            "SIGNED": signed,
            "CF": cf,
            "PIXELS": pixels,
        },
        [Lanes("s_axis", 0, pe, in_bits, in_bits, _pad8(pe * in_bits))],
        [Lanes("m_axis", 0, pe, out_bits, out_bits, _pad8(pe * out_bits))],
    )
