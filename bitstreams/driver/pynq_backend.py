"""The board backend: the bitstream on a PYNQ board, frames through the AXI DMA.

Written against PYNQ's documented API (PYNQ 2.7 / 3.x on Zynq UltraScale+):

* ``pynq.Overlay(bitfile)`` programs the PL; the ``.hwh`` of the same basename next to it
  describes the block design (bitstreams/: an AXI DMA ``dma`` in simple mode, MM2S ->
  accelerator -> S2MM, the wrapper making TLAST per transfer).
* ``pynq.allocate(shape, dtype)`` gives physically contiguous buffers; they are shaped as the
  host runtime's beats ``(frames * beats_per_frame, beat_bytes)`` uint8.
* ``dma.recvchannel.transfer(buf)`` / ``dma.sendchannel.transfer(buf)`` and ``.wait()`` move one
  batch (the channels flush and invalidate the caches themselves). ``wait()`` has no timeout: the
  driver polls ``.idle`` with one first, so a design that never sends TLAST is an error, not a hang.
* ``pynq.get_rails()`` (libsensors / PMBus) and ``pynq.DataRecorder(*sensors).record(interval)``
  sample the rails' power; ``recorder.frame`` is a pandas DataFrame, one column per sensor.
* ``pynq.Clocks.fclk0_mhz`` is the PL clock the PS actually makes (read, never set here).

Latency: ``time.perf_counter_ns`` around one single-frame round trip (arm S2MM, start MM2S, wait
for both), repeated; the block design has no cycle counter, so ``cycles`` is None. Throughput:
a large batch sent back to back, repeated for a few seconds. pynq is imported only when a
PynqBackend is made; without it the error says how to get it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from bitstreams.driver.accelerator import (
    Accelerator,
    LatencyFigures,
    PowerFigures,
    ThroughputFigures,
    distribution,
)
from qphy.contracts import Manifest
from qphy.errors import ConfigError, PipelineError, ToolNotFound

#: The AXI DMA's cell name in bitstreams/'s block design.
DMA_NAME = "dma"
#: bitstreams.boards.DmaConfig.length_width_bits: one transfer moves at most 2**26 - 1 bytes.
DMA_LENGTH_WIDTH_BITS = 26
#: Round trips before timing starts (page faults, first-transfer set-up).
WARMUP = 10
PYNQ_HINT = (
    "the board backend runs on a PYNQ image (PYNQ 2.7 or 3.x, where `import pynq` works, "
    "usually as root in the pynq venv); elsewhere run `qphy-board run OUT --backend sim`"
)


class DmaTimeout(PipelineError):
    """A DMA transfer did not complete (the accelerator sent no TLAST, or stalled)."""


def import_pynq():
    """``import pynq`` or ToolNotFound saying where it exists."""
    try:
        import pynq  # noqa: PLC0415 - only on a board
    except ImportError as exc:
        raise ToolNotFound("pynq", f"{PYNQ_HINT} ({exc})") from None
    return pynq


class PynqBackend(Accelerator):
    """A programmed bitstream with its AXI DMA.

    Args:
        bitfile: The ``.bit``; its ``.hwh`` must be next to it.
        manifest: The RTL's manifest (beat layout, clock).
        dma_name: The DMA's name in the overlay (default: the one AXI DMA in the design).
        download: Program the PL (False: attach to an overlay already loaded).
        timeout_s: Limit of one DMA transfer.
        rails: Rail names whose power is summed (default: every rail with a power sensor).
        power_interval_s: DataRecorder sample interval.
    """

    name = "board"

    def __init__(
        self,
        bitfile: Path,
        manifest: Manifest,
        *,
        dma_name: str | None = None,
        download: bool = True,
        timeout_s: float = 10.0,
        rails: list | None = None,
        power_interval_s: float = 0.05,
    ) -> None:
        self._pynq = import_pynq()
        bitfile = Path(bitfile)
        if not bitfile.is_file():
            raise ConfigError(f"{bitfile}: no such bitstream")
        if not bitfile.with_suffix(".hwh").is_file():
            hwh = bitfile.with_suffix(".hwh")
            raise ConfigError(f"{hwh} missing: PYNQ needs it next to the .bit")
        self.bitfile = bitfile
        self.manifest = manifest
        self.timeout_s = float(timeout_s)
        self.rail_names = list(rails) if rails else None
        self.power_interval_s = float(power_interval_s)
        self.overlay = self._pynq.Overlay(str(bitfile), download=download)
        self.dma_name = dma_name or self._find_dma()
        self.dma = functools.reduce(getattr, self.dma_name.split("/"), self.overlay)
        self.max_transfer_bytes = int(
            getattr(self.dma, "buffer_max_size", (1 << DMA_LENGTH_WIDTH_BITS) - 1)
        )
        self.clock_mhz, self.clock_source = self._pl_clock()
        self._buffers: dict = {}

    # --- set-up -------------------------------------------------------------------------------

    def _find_dma(self) -> str:
        dmas = [
            name
            for name, ip in self.overlay.ip_dict.items()
            if "axi_dma" in str(ip.get("type", ""))
        ]
        if DMA_NAME in dmas:
            return DMA_NAME
        if len(dmas) != 1:
            raise ConfigError(
                f"{self.bitfile.name}: expected one AXI DMA in the design, found {dmas or 'none'}"
                " (pass --dma NAME)"
            )
        return dmas[0]

    def _pl_clock(self) -> tuple[float, str]:
        clocks = getattr(self._pynq, "Clocks", None)
        mhz = getattr(clocks, "fclk0_mhz", None) if clocks is not None else None
        if mhz:
            return float(mhz), "pynq.Clocks.fclk0_mhz (the PL clock the PS makes)"
        return float(self.manifest.clock_mhz), "manifest (pynq.Clocks unavailable)"

    def _frame_bytes(self) -> tuple[int, int]:
        i, o = self.manifest.input, self.manifest.output
        return i.beats_per_frame * i.beat_bytes, o.beats_per_frame * o.beat_bytes

    def max_frames_per_transfer(self) -> int:
        return max(1, self.max_transfer_bytes // max(self._frame_bytes()))

    def _pair(self, frames: int):
        """Input and output DMA buffers for ``frames`` frames (allocated once per size)."""
        if frames not in self._buffers:
            i, o = self.manifest.input, self.manifest.output
            alloc = self._pynq.allocate
            self._buffers[frames] = (
                alloc(shape=(frames * i.beats_per_frame, i.beat_bytes), dtype=np.uint8),
                alloc(shape=(frames * o.beats_per_frame, o.beat_bytes), dtype=np.uint8),
            )
        return self._buffers[frames]

    # --- transfers ----------------------------------------------------------------------------

    def _wait(self, channel, what: str, deadline: float) -> None:
        while not channel.idle:
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"DMA {what} did not complete within {self.timeout_s:g} s (the accelerator "
                    "sent no TLAST or stopped); reload the overlay before the next run"
                )
        channel.wait()  # returns at once now; invalidates the receive buffer

    def _round_trip(self, ibuf, obuf) -> None:
        """One batch: arm S2MM first (the output never waits for it), then MM2S, wait both."""
        deadline = time.monotonic() + self.timeout_s
        self.dma.recvchannel.transfer(obuf)
        self.dma.sendchannel.transfer(ibuf)
        self._wait(self.dma.sendchannel, "MM2S (send)", deadline)
        self._wait(self.dma.recvchannel, "S2MM (receive)", deadline)
        got = getattr(self.dma.recvchannel, "transferred", None)
        if got is not None and int(got) != obuf.nbytes:
            raise PipelineError(
                f"S2MM received {int(got)} bytes, {obuf.nbytes} expected: the accelerator's "
                "TLAST came early or late"
            )

    def run(self, in_beats: np.ndarray) -> np.ndarray:
        i, o = self.manifest.input, self.manifest.output
        in_beats = np.asarray(in_beats, dtype=np.uint8).reshape(-1, i.beat_bytes)
        n = len(in_beats) // i.beats_per_frame
        per = self.max_frames_per_transfer()
        out = np.empty((n * o.beats_per_frame, o.beat_bytes), dtype=np.uint8)
        for start in range(0, n, per):
            m = min(per, n - start)
            ibuf, obuf = self._pair(m)
            ibuf[:] = in_beats[start * i.beats_per_frame : (start + m) * i.beats_per_frame]
            self._round_trip(ibuf, obuf)
            out[start * o.beats_per_frame : (start + m) * o.beats_per_frame] = obuf
        return out

    # --- measurements -------------------------------------------------------------------------

    def latency(self, frame_beats: np.ndarray, runs: int) -> LatencyFigures:
        ibuf, obuf = self._pair(1)
        ibuf[:] = np.asarray(frame_beats, dtype=np.uint8).reshape(ibuf.shape)
        for _ in range(WARMUP):
            self._round_trip(ibuf, obuf)
        samples = np.empty(int(runs), dtype=np.int64)
        clock = time.perf_counter_ns
        for k in range(int(runs)):
            t0 = clock()
            self._round_trip(ibuf, obuf)
            samples[k] = clock() - t0
        lo, med, p99 = distribution(samples)
        return LatencyFigures(
            runs=int(runs),
            min_us=lo,
            median_us=med,
            p99_us=p99,
            cycles=None,
            method=(
                "time.perf_counter_ns around one single-frame DMA round trip (S2MM armed, MM2S "
                "started, both waited for by polling), from Python: includes the driver's "
                "register writes and cache maintenance; no cycle counter in the block design"
            ),
        )

    def _batch(self, batch_beats: np.ndarray):
        i = self.manifest.input
        batch = np.asarray(batch_beats, dtype=np.uint8).reshape(-1, i.beat_bytes)
        frames = min(len(batch) // i.beats_per_frame, self.max_frames_per_transfer())
        ibuf, obuf = self._pair(frames)
        ibuf[:] = batch[: frames * i.beats_per_frame]
        return frames, ibuf, obuf

    def _load(self, ibuf, obuf, seconds: float) -> tuple[int, float]:
        """Round trips of one batch back to back for ``seconds`` (at least 3)."""
        reps, t0 = 0, time.perf_counter_ns()
        while reps < 3 or time.perf_counter_ns() - t0 < seconds * 1e9:
            self._round_trip(ibuf, obuf)
            reps += 1
        return reps, (time.perf_counter_ns() - t0) / 1e9

    def throughput(self, batch_beats: np.ndarray, seconds: float) -> ThroughputFigures:
        frames, ibuf, obuf = self._batch(batch_beats)
        self._round_trip(ibuf, obuf)
        reps, elapsed = self._load(ibuf, obuf, seconds)
        return ThroughputFigures(
            vectors_per_s=frames * reps / elapsed,
            batch_vectors=frames,
            cycles_per_frame=None,
            method=(
                f"{reps} DMA round trips of {frames} frames each, back to back for "
                f"{elapsed:.2f} s (time.perf_counter_ns), buffers filled once"
            ),
        )

    def _rails(self):
        rails = self._pynq.get_rails()
        powered = {name: r for name, r in rails.items() if getattr(r, "power", None) is not None}
        if self.rail_names is not None:
            missing = sorted(set(self.rail_names) - set(powered))
            if missing:
                raise ConfigError(
                    f"rails {missing} have no power sensor here; these do: {sorted(powered)}"
                )
            powered = {n: powered[n] for n in self.rail_names}
        return powered

    def _record(self, sensors, seconds: float, work=None):
        recorder = self._pynq.DataRecorder(*sensors)
        with recorder.record(self.power_interval_s):
            result = work() if work is not None else time.sleep(seconds)
        frame = recorder.frame
        means = {s.name: float(frame[s.name].mean()) for s in sensors}
        return means, result

    def power(self, batch_beats: np.ndarray, seconds: float) -> PowerFigures:
        try:
            rails = self._rails()
        except (OSError, RuntimeError) as exc:
            return PowerFigures.unavailable(f"pynq.get_rails() failed: {exc}")
        if not rails:
            return PowerFigures.unavailable(
                "pynq.get_rails() found no rail with a power sensor (no PMBus/libsensors "
                "support for this board in PYNQ)"
            )
        sensors = [r.power for r in rails.values()]
        frames, ibuf, obuf = self._batch(batch_beats)
        idle, _ = self._record(sensors, seconds)
        load, (reps, elapsed) = self._record(
            sensors, seconds, lambda: self._load(ibuf, obuf, seconds)
        )
        per_rail = {
            name: {"idle": idle[r.power.name], "load": load[r.power.name]}
            for name, r in rails.items()
        }
        names = sorted(rails)
        return PowerFigures(
            idle_w=sum(v["idle"] for v in per_rail.values()),
            load_w=sum(v["load"] for v in per_rail.values()),
            load_vectors_per_s=frames * reps / elapsed,
            method=(
                f"pynq.DataRecorder every {self.power_interval_s:g} s, mean over {seconds:g} s "
                f"idle, then over {elapsed:.2f} s of back-to-back {frames}-frame batches; sum of "
                f"{len(names)} rail(s)"
            ),
            rails=names,
            per_rail_w=per_rail,
        )

    def details(self) -> dict:
        from qphy.fsutil import sha256  # noqa: PLC0415

        return {
            "bitstream": self.bitfile.name,
            "bitstream_sha256": sha256(self.bitfile),
            "dma": self.dma_name,
            "dma_max_transfer_bytes": self.max_transfer_bytes,
            "clock_source": self.clock_source,
        }

    def tool_versions(self) -> dict:
        return {**super().tool_versions(), "pynq": getattr(self._pynq, "__version__", "unknown")}

    def close(self) -> None:
        for pair in self._buffers.values():
            for buf in pair:
                free = getattr(buf, "freebuffer", None)
                if free is not None:
                    free()
        self._buffers.clear()
