"""Variant names ``<arch>_w<W>a<A>`` and the bit-width specs they carry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qphy.errors import ConfigError

#: Widths that QAT supports (weights and activations). The input quantizer is always 8-bit.
MIN_BITS = 2
MAX_BITS = 8

_BITS_RE = re.compile(r"^w(\d+)a(\d+)$")


@dataclass(frozen=True, order=True)
class Bits:
    """Weight and activation bit widths of a quantized variant."""

    weight_bits: int
    act_bits: int

    @property
    def tag(self) -> str:
        """Readable id, e.g. ``w4a4``."""
        return f"w{self.weight_bits}a{self.act_bits}"

    def __str__(self) -> str:
        return self.tag


def int_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """(lowest, highest) integer of a ``bits``-wide quantizer, as QONNX's Quant defines it
    (narrow range drops the most negative code when signed, the top code when unsigned)."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def parse_bits(text: str) -> Bits:
    """Parse ``w<W>a<A>``; raise ConfigError for anything else or widths outside 2..8."""
    m = _BITS_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"bad bit widths '{text}': expected w<W>a<A>, e.g. w4a4")
    w, a = int(m.group(1)), int(m.group(2))
    for name, v in (("weight", w), ("activation", a)):
        if not MIN_BITS <= v <= MAX_BITS:
            raise ConfigError(
                f"bad bit widths '{text}': {name} width {v} outside {MIN_BITS}..{MAX_BITS}"
            )
    return Bits(w, a)


def variant_name(arch: str, bits: Bits | None) -> str:
    """``fullycon_w4a4`` for a quantized variant, ``fullycon_float`` for the float model."""
    return f"{arch}_{bits.tag if bits else 'float'}"
