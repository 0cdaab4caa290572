"""The simulation backend: the driver against the Verilator model of the same RTL.

The compiled harness (:mod:`sim.harness`) is built from the build directory's ``hw/rtl``
(:func:`sim.rtl_sources.prepare_sources` into a work directory; :func:`sim.harness_build.
build_harness` caches the executable by content, so a design the verdict already built is not
compiled again). It is fed the driver's own uint8 beat buffer (the harness's ``inputs.bin`` is
checked to be byte for byte that buffer) and returns the raw output beats its sink received
(``outputs.bin``), the bytes an S2MM transfer would write.

Figures come from the harness's clock-cycle counts (the same as the verdict's): latency of
frame 0 on an idle pipeline, steady-state cycles per frame of a back-to-back burst; microseconds
and vectors/s at the manifest's clock. Power: unavailable.

hw/ and sim/ are imported here lazily, only when a SimBackend is made: the driver package
itself stays importable on a board without them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from bitstreams.driver.accelerator import (
    Accelerator,
    LatencyFigures,
    PowerFigures,
    ThroughputFigures,
)
from qphy.contracts import Manifest
from qphy.errors import ConfigError, PipelineError
from qphy.host import unpack_beats

#: Frames of the back-to-back burst that measures cycles per frame (the verdict's default).
N_BURST = 32
POWER_REASON = (
    "the RTL simulation has no power model: measure on a board (pynq PMBus rails) or read "
    "Vivado's report_power (bitstreams/, with a SAIF from the simulation)"
)


class SimBackend(Accelerator):
    """The Verilator model of a build directory's RTL behind the driver's beat buffers.

    Args:
        rtl_dir: ``OUT/hw/rtl`` (src, mem, manifest.json).
        cache_dir: Harness cache (default: qphy's cache, shared with the verdict).
        work_dir: Where sources are prepared and runs happen (default: a temporary directory,
            removed by :meth:`close`).
        mem_dir: Memory files to run with instead of ``rtl_dir/mem`` (fault injection).
        seed: Seed of the backpressure pattern of the verdict phase.
        source_pause_prob, sink_pause_prob: Random stalls in the verdict phase; 0 by default
            (an AXI DMA streams back to back). The cycle figures never see them.
        timeout_s: Wall-clock limit of the build and of each run.
    """

    name = "sim"

    def __init__(
        self,
        rtl_dir: Path,
        *,
        cache_dir: Path | None = None,
        work_dir: Path | None = None,
        mem_dir: Path | None = None,
        seed: int = 0,
        source_pause_prob: float = 0.0,
        sink_pause_prob: float = 0.0,
        timeout_s: float = 900.0,
    ) -> None:
        from sim.harness_build import build_harness  # noqa: PLC0415 - hw/sim only for this backend
        from sim.rtl_sources import prepare_sources  # noqa: PLC0415

        rtl_dir = Path(rtl_dir)
        if not (rtl_dir / "src").is_dir():
            raise ConfigError(
                f"{rtl_dir}/src does not exist: the sim backend runs a build directory's RTL "
                "(OUT/hw/rtl); a board directory holds only the bitstream"
            )
        if cache_dir is None:
            from sim.cache import default_harness_cache  # noqa: PLC0415

            cache_dir = default_harness_cache()
        self.manifest = Manifest.read(rtl_dir / "manifest.json")
        self.clock_mhz = float(self.manifest.clock_mhz)
        self._own_work = work_dir is None
        if work_dir is None:
            work_dir = tempfile.mkdtemp(prefix="qphy-board-sim-")
        self.work_dir = Path(work_dir)
        self.mem_dir = Path(mem_dir) if mem_dir is not None else rtl_dir / "mem"
        self.seed = int(seed)
        self.pause = (float(source_pause_prob), float(sink_pause_prob))
        self.timeout_s = float(timeout_s)
        self._runs = 0
        self._last = None  # (input bytes, output beats, HarnessResult) of the last run
        design = prepare_sources(rtl_dir, self.work_dir)
        self.build = build_harness(
            design.sources, design.top, Path(cache_dir), timeout_s=self.timeout_s
        )

    def _harness(self, in_beats: np.ndarray):
        """One harness run on whole frames of beats; returns (output beats, HarnessResult)."""
        from sim.harness import run_harness  # noqa: PLC0415

        m = self.manifest
        in_beats = np.ascontiguousarray(in_beats, dtype=np.uint8)
        frames = in_beats.reshape(-1, m.input.beat_bytes)
        if len(frames) == 0 or len(frames) % m.input.beats_per_frame:
            raise PipelineError(
                f"{len(frames)} input beats is not a whole number of "
                f"{m.input.beats_per_frame}-beat frames"
            )
        n = len(frames) // m.input.beats_per_frame
        if self._last is not None and self._last[0] == frames.tobytes():
            return self._last[1], self._last[2]
        # The harness's throughput burst needs N_BURST frames: repeat the batch up to that many,
        # the extra frames' outputs are cut off below.
        reps = -(-N_BURST // n)
        sent = np.concatenate([frames] * reps) if reps > 1 else frames
        ints = unpack_beats(sent, m.input)  # the harness packs them again: checked below
        self._runs += 1
        run_dir = self.work_dir / f"run{self._runs}"
        result = run_harness(
            self.build,
            self.mem_dir,
            ints,
            m.input,
            m.output,
            m.output.elems_per_frame,
            run_dir=run_dir,
            seed=self.seed,
            source_pause_prob=self.pause[0],
            sink_pause_prob=self.pause[1],
            n_burst=N_BURST,
            timeout_s=self.timeout_s,
        )
        fed = np.fromfile(run_dir / "inputs.bin", dtype=np.uint8)
        if fed.tobytes() != sent.tobytes():
            raise PipelineError("the harness was fed other bytes than the driver's beat buffer")
        out = np.fromfile(run_dir / "outputs.bin", dtype=np.uint8)
        out = out.reshape(-1, m.output.beat_bytes)[: n * m.output.beats_per_frame]
        if result.extra_beats:
            raise PipelineError(
                f"the accelerator sent {result.extra_beats} output beat(s) more than "
                f"{len(sent) // m.input.beats_per_frame} frames hold"
            )
        self._last = (frames.tobytes(), out, result)
        return out, result

    def run(self, in_beats: np.ndarray) -> np.ndarray:
        return self._harness(in_beats)[0]

    def latency(self, frame_beats: np.ndarray, runs: int) -> LatencyFigures:
        """The harness's latency of the last run's frame 0 (or of ``frame_beats``): cycles
        from its first input to its last output handshake on an idle pipeline. Deterministic:
        one run is the distribution."""
        result = self._last[2] if self._last is not None else self._harness(frame_beats)[1]
        if result.latency_cycles is None:
            raise PipelineError(f"the RTL deadlocked in the {result.deadlock_phase} phase")
        us = result.latency_cycles / self.clock_mhz
        return LatencyFigures(
            runs=1,
            min_us=us,
            median_us=us,
            p99_us=us,
            cycles=int(result.latency_cycles),
            method=(
                "Verilator harness: clock cycles from frame 0's first input to its last output "
                f"handshake on an idle pipeline, at the manifest clock {self.clock_mhz:g} MHz"
            ),
        )

    def throughput(self, batch_beats: np.ndarray, seconds: float) -> ThroughputFigures:
        result = self._last[2] if self._last is not None else self._harness(batch_beats)[1]
        cpf = result.cycles_per_frame
        if not cpf or cpf <= 0:
            raise PipelineError(f"the RTL deadlocked in the {result.deadlock_phase} phase")
        return ThroughputFigures(
            vectors_per_s=self.clock_mhz * 1e6 / cpf,
            batch_vectors=N_BURST,
            cycles_per_frame=float(cpf),
            method=(
                f"Verilator harness: steady-state cycles per frame of a {N_BURST}-frame "
                f"back-to-back burst, at the manifest clock {self.clock_mhz:g} MHz"
            ),
        )

    def power(self, batch_beats: np.ndarray, seconds: float) -> PowerFigures:
        return PowerFigures.unavailable(POWER_REASON)

    def details(self) -> dict:
        last = self._last[2] if self._last is not None else None
        return {
            "harness": str(self.build.binary),
            "harness_cached": self.build.cached,
            "mem_dir": str(self.mem_dir),
            "source_pause_prob": self.pause[0],
            "sink_pause_prob": self.pause[1],
            "seed": self.seed,
            "sim_cycles": last.sim_cycles if last is not None else None,
            "deadlock": last.deadlock if last is not None else None,
        }

    def tool_versions(self) -> dict:
        from hw.toolchain import verilator_version  # noqa: PLC0415

        return {**super().tool_versions(), "verilator": verilator_version()}

    def close(self) -> None:
        if self._own_work:
            shutil.rmtree(self.work_dir, ignore_errors=True)
