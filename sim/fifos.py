"""The real StreamingFIFOs in simulation: Verilator-only patches of the sim build's copies.

FINN's StreamingFIFO wrapper (finn-rtllib ``fifo/hdl/fifo_template.v``) instantiates the
unbounded ``fifo_gauge`` under ``FINN_SIMULATION``; a gauge never applies backpressure, so the
sized depths (hw_report.json ``fifo_depths``) would never be exercised and a design whose FIFOs
are too shallow would pass. The verdict keeps ``FINN_SIMULATION`` (the DSP primitives need their
behavioural models) and instead:

* :func:`patch_fifo_wrapper` makes every StreamingFIFO wrapper instantiate the real ``fifo`` at
  its sized DEPTH (the non-simulation branch of the same wrapper, unchanged);
* :func:`patch_fifo_sv` rewrites the one construct of finn-rtllib's ``fifo.sv`` that Verilator
  rejects, a constant function returning a struct (``INIT_ABITS``), into plain localparams with
  the same values.

Both work on the sim directory's copies (never on rtl/, never on site-packages), for the harness
and the cocotb bench alike (both compile :func:`sim.rtl_sources.prepare_sources`' output).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from qphy.contracts import Manifest
from qphy.errors import DeadlockError, PipelineError

#: report.json's ``fifo_model`` for a verdict that simulates the FIFOs at their sized depths.
FIFO_MODEL = "sized"

_GAUGE_BRANCH = re.compile(
    r"`ifdef\s+FINN_SIMULATION\s*\n\s*fifo_gauge\b.*?`else\s*\n(?P<real>.*?)`endif[^\n]*\n",
    re.DOTALL,
)


_GAUGE_INSTANCE = re.compile(r"^\s*fifo_gauge\s*#\(", re.MULTILINE)


def patch_fifo_wrapper(text: str) -> str:
    """Keep only the real ``fifo`` branch of a StreamingFIFO wrapper (drop the gauge).

    A text without the gauge branch is returned unchanged (already patched, or not a FIFO).
    """
    if not _GAUGE_INSTANCE.search(text):
        return text
    m = _GAUGE_BRANCH.search(text)
    if m is None or not re.search(r"\bfifo\s+#\(\s*\.DEPTH\(", m.group("real")):
        raise PipelineError(
            "StreamingFIFO wrapper changed upstream: cannot select the sized fifo for simulation"
        )
    return text[: m.start()] + m.group("real") + text[m.end() :]


_ABITS_FUNC = re.compile(
    r"\s*typedef struct \{\s*int unsigned\s+lo;\s*int unsigned\s+hi;\s*\} abits_t;"
    r".*?endfunction\s*:\s*INIT_ABITS\s*\n\s*localparam abits_t\s+ABITS\s*=\s*INIT_ABITS\(\);\n",
    re.DOTALL,
)

# Same values as INIT_ABITS (lo = clog2(DEPTH_REQ), split into lo-1 + hi when the upper half
# needs fewer than lo-1 address bits), as localparams: Verilator cannot evaluate a constant
# function that returns a struct. The guarded branches are only elaborated when they apply.
_ABITS_PARAMS = """
	// qphy (Verilator only): INIT_ABITS as localparams, same values.
	localparam int unsigned  ABITS_LO0   = $clog2(DEPTH_REQ);
	localparam int unsigned  ABITS_HI0   =
		ABITS_LO0 > MIN_ABITS? $clog2(DEPTH_REQ - 2**(ABITS_LO0-1)) : 0;
	localparam bit           ABITS_SPLIT = ABITS_LO0 > MIN_ABITS && ABITS_HI0 < ABITS_LO0 - 1;
	localparam int unsigned  ABITS_LO    = ABITS_SPLIT? ABITS_LO0 - 1 : ABITS_LO0;
	localparam int unsigned  ABITS_HI    = ABITS_SPLIT? (ABITS_HI0 < 1? 1 : ABITS_HI0) : 0;
"""


def patch_fifo_sv(text: str) -> str:
    """Replace fifo.sv's struct-returning constant function by localparams (see module doc)."""
    if "ABITS_LO0" in text:
        return text  # already patched
    m = _ABITS_FUNC.search(text)
    if m is None:
        if "INIT_ABITS" in text:
            raise PipelineError("fifo.sv changed upstream: cannot apply the Verilator fix")
        return text
    text = text[: m.start()] + "\n" + _ABITS_PARAMS + text[m.end() :]
    return text.replace("ABITS.lo", "ABITS_LO").replace("ABITS.hi", "ABITS_HI")


def fifo_model(src_dir: Path) -> str:
    """``sized`` when no source of the sim copy instantiates FINN's unbounded gauge, else
    ``gauge`` (a sim directory prepared before the FIFOs were simulated)."""
    for f in Path(src_dir).iterdir():
        if f.suffix in (".v", ".sv") and _GAUGE_INSTANCE.search(f.read_text()):
            return "gauge"
    return FIFO_MODEL


def stream_label(name: str, manifest: Manifest | None) -> str:
    """A stream of the stitched top named with the layers it joins (``st3`` feeds node 3)."""
    m = re.fullmatch(r"st(\d+)", name)
    if manifest is None or m is None:
        return name
    k, nodes = int(m.group(1)), manifest.nodes
    src = nodes[k - 1].name if 0 < k <= len(nodes) else "s_axis"
    dst = nodes[k].name if k < len(nodes) else "m_axis"
    return f"{name} ({src} -> {dst})"


def stalled_streams(streams: Sequence[dict], manifest: Manifest | None = None) -> list[str]:
    """Labels of the streams stuck with valid high and ready low (see :func:`stream_label`)."""
    return [
        stream_label(str(s["name"]), manifest) for s in streams if s["valid"] and not s["ready"]
    ]


def deadlock_error(
    result, n_vectors: int, stall_limit_cycles: int, manifest: Manifest | None = None
) -> DeadlockError | None:
    """The named error of a harness run that deadlocked (:class:`sim.harness.HarnessResult`),
    or None when it did not."""
    if not result.deadlock:
        return None
    return DeadlockError(
        result.deadlock_phase or "verdict",
        stalled_streams(result.streams, manifest),
        len(result.actual),
        n_vectors,
        stall_limit_cycles,
    )
