"""The accelerator as the driver sees it: uint8 beat buffers in, uint8 beat buffers out.

Both backends (:class:`~bitstreams.driver.pynq_backend.PynqBackend` on a board,
:class:`~bitstreams.driver.sim_backend.SimBackend` on the Verilator model) take and return the
buffers an AXI DMA moves: ``(n * beats_per_frame, beat_bytes)`` uint8, little-endian beats,
element 0 in the least significant bits (:func:`qphy.host.pack_beats`). Everything else
(quantizing, packing, judging, the report) is shared driver logic in :mod:`bitstreams.driver.run`.

numpy only; numpy 1.x semantics (a PYNQ image), Python 3.10 syntax.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class LatencyFigures:
    """Single-vector latency: one frame into an idle accelerator, its result back.

    Attributes:
        runs: Round trips measured.
        min_us, median_us, p99_us: The distribution over the runs (p99: nearest rank).
        cycles: Accelerator clock cycles of one frame, where something counts them (the
            simulation; a board only with a cycle counter in the design), else None.
        method: How it was measured, in words.
    """

    runs: int
    min_us: float
    median_us: float
    p99_us: float
    cycles: int | None
    method: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ThroughputFigures:
    """Back-to-back throughput over a large batch.

    Attributes:
        vectors_per_s: Vectors per second.
        batch_vectors: Vectors per batch (per DMA transfer on a board).
        cycles_per_frame: Accelerator cycles between frames where counted (the simulation).
        method: How it was measured, in words.
    """

    vectors_per_s: float
    batch_vectors: int
    cycles_per_frame: float | None
    method: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PowerFigures:
    """Board power idle and under load; None (with ``reason``) where it cannot be measured.

    Attributes:
        idle_w: Mean power of the selected rails with the accelerator idle.
        load_w: Mean power of the same rails while batches run back to back.
        load_vectors_per_s: Throughput during the load phase (for the energy per inference).
        reason: Why power is unavailable (None when measured).
        method: How it was measured, in words.
        rails: The rails summed (names as ``pynq.get_rails()`` gives them).
        per_rail_w: ``{rail: {"idle": W, "load": W}}``.
    """

    idle_w: float | None
    load_w: float | None
    load_vectors_per_s: float | None = None
    reason: str | None = None
    method: str = ""
    rails: list = field(default_factory=list)
    per_rail_w: dict = field(default_factory=dict)

    @classmethod
    def unavailable(cls, reason: str) -> PowerFigures:
        return cls(idle_w=None, load_w=None, reason=reason)

    @property
    def available(self) -> bool:
        return self.idle_w is not None and self.load_w is not None

    def energy_per_inference_j(self) -> float | None:
        """Energy the inference adds per vector: (load - idle) power / load throughput."""
        if not self.available or not self.load_vectors_per_s:
            return None
        return (self.load_w - self.idle_w) / self.load_vectors_per_s

    def total_energy_per_inference_j(self) -> float | None:
        """All the rails' energy per vector under load: load power / load throughput."""
        if not self.available or not self.load_vectors_per_s:
            return None
        return self.load_w / self.load_vectors_per_s

    def to_json(self) -> dict:
        return asdict(self)


def distribution(samples_ns) -> tuple[float, float, float]:
    """(min, median, p99) in microseconds of nanosecond samples; p99 by nearest rank (no
    numpy-version-dependent percentile options)."""
    s = np.sort(np.asarray(samples_ns, dtype=np.float64)) / 1000.0
    if s.size == 0:
        raise ValueError("no samples")
    rank = max(1, int(np.ceil(0.99 * s.size)))
    return float(s[0]), float(np.median(s)), float(s[rank - 1])


class Accelerator(abc.ABC):
    """One deployed accelerator. Use as a context manager (``close`` frees its resources).

    Attributes:
        name: ``board`` or ``sim`` (the ``--backend`` value).
        clock_mhz: The accelerator clock the figures refer to.
    """

    name: str = ""
    clock_mhz: float = 0.0

    @abc.abstractmethod
    def run(self, in_beats: np.ndarray) -> np.ndarray:
        """Send whole frames of input beats, return the output beats received (uint8
        ``(frames * out_beats_per_frame, out_beat_bytes)``; fewer frames if it stopped)."""

    @abc.abstractmethod
    def latency(self, frame_beats: np.ndarray, runs: int) -> LatencyFigures:
        """Single-frame latency over ``runs`` round trips of ``frame_beats`` (one frame)."""

    @abc.abstractmethod
    def throughput(self, batch_beats: np.ndarray, seconds: float) -> ThroughputFigures:
        """Throughput of ``batch_beats`` (many frames) sent back to back for ``seconds``."""

    @abc.abstractmethod
    def power(self, batch_beats: np.ndarray, seconds: float) -> PowerFigures:
        """Power idle and while ``batch_beats`` run back to back, ``seconds`` each."""

    def details(self) -> dict:
        """Backend facts for the report (bitstream, harness build, DMA, ...)."""
        return {}

    def tool_versions(self) -> dict:
        return {"numpy": np.__version__}

    def close(self) -> None:  # noqa: B027 - a no-op unless a backend holds resources
        """Free buffers, temporary files."""

    def __enter__(self) -> Accelerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
