"""The one error hierarchy of qphy.

Every error a user can cause derives from :class:`PipelineError`. The CLI turns each into one
readable line and a non-zero exit code (``exit_code``), without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PipelineError(Exception):
    """Base class of every user-facing qphy error."""

    exit_code: int = 1


class ConfigError(PipelineError):
    """A bad option, variant name, config file or config value."""

    exit_code = 2


class CheckpointError(PipelineError):
    """A checkpoint is missing, unreadable or does not fit the requested model."""


class MalformedModelError(PipelineError):
    """An ONNX/QONNX file cannot be read or is not a valid model."""


@dataclass(frozen=True)
class UnsupportedNode:
    """One node that cannot become a hardware layer."""

    name: str
    op_type: str
    hint: str

    def __str__(self) -> str:
        return f"{self.name} ({self.op_type}): {self.hint}"


class UnsupportedLayerError(PipelineError):
    """The graph holds nodes that would not become RTL layers; all of them are listed."""

    def __init__(self, nodes: Sequence[UnsupportedNode], stage: str = ""):
        self.nodes = list(nodes)
        where = f" after {stage}" if stage else ""
        listing = "; ".join(str(n) for n in self.nodes)
        super().__init__(f"{len(self.nodes)} unsupported node(s){where}: {listing}")


class ToolNotFound(PipelineError):
    """An external tool (Verilator, Vivado, ...) is missing; the message says how to get it."""

    def __init__(self, tool: str, how_to_install: str):
        self.tool = tool
        super().__init__(f"required tool '{tool}' not found: {how_to_install}")


class BitMismatchError(PipelineError):
    """Two integer results that must be identical are not; names the first difference."""

    def __init__(
        self,
        what: str,
        vector: int,
        index: int | tuple[int, ...],
        expected: object,
        actual: object,
        mismatches: int = 1,
        vectors_checked: int | None = None,
    ):
        self.what = what
        self.vector = vector
        self.index = index
        self.expected = expected
        self.actual = actual
        self.mismatches = mismatches
        self.vectors_checked = vectors_checked
        of = f" of {vectors_checked}" if vectors_checked is not None else ""
        super().__init__(
            f"{what}: {mismatches} mismatching vector(s){of}; first at vector {vector}, "
            f"index {index}: expected {expected}, got {actual}"
        )


class DeadlockError(BitMismatchError):
    """The RTL stopped sending output (no progress for the bench's stall limit): a deadlock.

    Names the streams whose producer was stuck with a beat its consumer never took (``stalled``)
    at that moment, e.g. the input of a FIFO too shallow for a reconvergent branch.
    """

    def __init__(
        self,
        phase: str,
        stalled: Sequence[str],
        vectors_received: int,
        vectors_checked: int,
        stall_limit_cycles: int,
    ):
        super().__init__(
            "RTL deadlock", vectors_received, 0, None, None, vectors_checked=vectors_checked
        )
        self.phase = phase
        self.stalled = list(stalled)
        where = ", ".join(self.stalled) if self.stalled else "none visible at the top level"
        self.args = (
            f"RTL deadlock in the {phase} phase: no output for {stall_limit_cycles} cycles after "
            f"{vectors_received} of {vectors_checked} vectors; stalled streams (valid, not "
            f"ready): {where}",
        )


class AccumulatorOverflowError(PipelineError):
    """An MVAU accumulator took a value outside the width FINN chose for it (named per layer)."""


class LatencyBudgetError(PipelineError):
    """A measured latency exceeds its budget."""


class ContractError(PipelineError):
    """A stage hand-off file (manifest, host spec, sim job, report) is of an unknown version or
    does not have the shape its contract defines."""


def run_command(prog: str, build_parser, argv=None, quiet_loggers: tuple[str, ...] = ()) -> int:
    """Parse ``argv`` with ``build_parser()`` and run ``args.func(args)`` as a command line does:
    a user error (PipelineError) becomes one line ``<prog>: error: <Name>: <message>`` on stderr
    and its exit code; Ctrl-C exits 130. Shared by ``qphy`` and the board's ``qphy-board``."""
    import logging
    import sys

    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        for name in quiet_loggers:
            logging.getLogger(name).setLevel(logging.WARNING)
        return args.func(args)
    except PipelineError as exc:
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
