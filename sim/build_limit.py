"""The wall-clock limit of the Verilator build, scaled with the design unless one is given.

A fixed 900 s was too short for latency-optimised foldings: the xczu7ev point's harness took
1,033 s to compile on the shared 2-core machine, the default FullyCon 73 s. The C++ Verilator
writes grows with the unrolled datapath, whose proxy here is the sum of the stream widths of
every layer (input, output and weight stream, in bits): 7,152 bits for the default FullyCon
(0.010 s per bit measured), 84,776 for the xczu7ev point (0.012 s per bit). The automatic limit
allows four times the slower rate, never less than the old 900 s.
"""

from __future__ import annotations

from qphy.contracts import Manifest
from qphy.errors import ConfigError

#: The floor of the automatic limit (the former fixed limit).
BASE_S = 900.0
#: Seconds allowed per bit of stream width (4x the slowest rate measured, see above).
S_PER_STREAM_BIT = 0.05


def stream_bits(manifest: Manifest) -> int:
    """Sum over the layers of their input, output and weight-stream widths (bits)."""
    return sum(
        n.in_width_bits + n.out_width_bits + int((n.memstream or {}).get("width_bits", 0))
        for n in manifest.nodes
    )


def build_timeout_s(configured: float, manifest: Manifest) -> float:
    """``configured`` when positive, else the automatic limit for ``manifest``'s design."""
    if configured < 0:
        raise ConfigError(f"build_timeout_s must be >= 0 (0: automatic), got {configured}")
    if configured > 0:
        return float(configured)
    return max(BASE_S, S_PER_STREAM_BIT * stream_bits(manifest))


def timeout_message(limit_s: float, configured: float, detail: str) -> str:
    """The one line of a build past its limit: the limit, where it came from, how to raise it."""
    origin = "given" if configured > 0 else "automatic, from the design's size"
    return (
        f"the Verilator build exceeded its {limit_s:.0f} s wall-clock limit ({origin}); raise "
        f"it with `qphy build --build-timeout-s S` (sim config build_timeout_s): {detail}"
    )
