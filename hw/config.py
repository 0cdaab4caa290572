"""HwBuildConfig: every knob of the hw stage in one frozen dataclass, and its loader."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qphy.config import reject_unknown_keys
from qphy.defaults import CLOCK_MHZ as DEFAULT_CLOCK_MHZ
from qphy.defaults import FPGA_PART as DEFAULT_FPGA_PART
from qphy.defaults import OPTIMIZE_MARGIN as DEFAULT_OPTIMIZE_MARGIN
from qphy.defaults import TARGET_CYCLES as DEFAULT_TARGET_CYCLES
from qphy.errors import ConfigError


class Preset(enum.StrEnum):
    """Named step lists (see :data:`hw.steps.PRESETS`)."""

    #: Everything up to the Verilog and the exported RTL directory.
    RTL = "rtl"
    #: Only up to the HW-layer conversion and its supported-op check (seconds, no RTL).
    CHECK = "check"


class FifoSizing(enum.StrEnum):
    """How FIFO depths between layers are chosen (FINN's own sizing needs Vivado)."""

    #: Each FIFO holds one whole frame of its stream: a linear chain then never stalls a producer
    #: for a consumer that is busy with the previous frame (full throughput, no deadlock).
    FRAME = "frame"
    #: Depth 2 everywhere (smallest; throughput may drop for bursty producers).
    MINIMAL = "minimal"
    #: No FIFOs at all (lowest latency; verify the throughput in simulation).
    NONE = "none"

    def depth(self, words: int) -> int:
        """Depth of one FIFO on a stream of ``words`` beats per frame: a whole frame (FRAME)
        or 2 (MINIMAL)."""
        return max(2, words) if self is FifoSizing.FRAME else 2


class FoldingPreference(enum.StrEnum):
    """Which folding wins among those that meet the cycles target."""

    #: Fewest DSPs, then fewest PE*SIMD, then fewest PE.
    RESOURCES = "resources"
    #: Smallest SIMD first: the RTL MVU's DSP chain is SIMD long, so a short chain cuts latency.
    LATENCY = "latency"


class Optimize(enum.StrEnum):
    """What ``--optimize`` minimises, within the part's capacity times a margin (hw.optimize)."""

    #: End-to-end latency (the layers' cycles plus their pipeline depths).
    LATENCY = "latency"
    #: The initiation interval (cycles per frame of the slowest layer), then latency.
    THROUGHPUT = "throughput"
    #: DSPs, among foldings whose slowest layer meets ``target_cycles``.
    RESOURCES = "resources"


@dataclass(frozen=True)
class HwBuildConfig:
    """Configuration of the hw stage.

    Attributes:
        fpga_part: Xilinx part the RTL layers are specialized for (DSP type, resource models).
        clock_mhz: Target clock; used for the HDL generation and to convert cycles to time.
        target_cycles: Folding target: each layer gets the least parallelism (PE, SIMD) that
            brings its cycles per frame to at most this many. The slowest layer sets the
            accelerator's cycles per frame.
        target_latency_cycles: Optional latency target: when set, the per-layer target is lowered
            until the analytic latency (sum of the layers' cycles) is at most this many.
        folding_preference: Tie-break among foldings that meet the target.
        fifo_sizing: How the inter-layer FIFO depths are chosen.
        optimize: Search the folding (hw.optimize) for this goal instead of folding to
            ``target_cycles`` layer by layer; None: the target-driven folding.
        optimize_margin: Share of each resource of the part the search may use (by the
            calibrated synth model, hw.synth_model).
        preset: Which list of steps to run.
        start_step: Resume from this step (its predecessor's intermediate model is loaded).
        stop_step: Stop after this step.
        build_dir: Where intermediate models, reports and RTL go; set by the caller per build.
    """

    fpga_part: str = DEFAULT_FPGA_PART
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    target_cycles: int = DEFAULT_TARGET_CYCLES
    target_latency_cycles: int | None = None
    folding_preference: FoldingPreference = FoldingPreference.RESOURCES
    fifo_sizing: FifoSizing = FifoSizing.FRAME
    optimize: Optimize | None = None
    optimize_margin: float = DEFAULT_OPTIMIZE_MARGIN
    preset: Preset = Preset.RTL
    start_step: str | None = None
    stop_step: str | None = None
    build_dir: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fpga_part, str) or not self.fpga_part.startswith("x"):
            raise ConfigError(f"fpga_part '{self.fpga_part}' is not a Xilinx part name")
        if not self.clock_mhz > 0:
            raise ConfigError(f"clock_mhz must be > 0, got {self.clock_mhz}")
        if not 0 < float(self.optimize_margin) <= 1:
            raise ConfigError(f"optimize_margin must be in (0, 1], got {self.optimize_margin}")
        if int(self.target_cycles) < 1:
            raise ConfigError(f"target_cycles must be >= 1, got {self.target_cycles}")
        if self.target_latency_cycles is not None and int(self.target_latency_cycles) < 1:
            raise ConfigError(
                f"target_latency_cycles must be >= 1, got {self.target_latency_cycles}"
            )

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz


def load_hw_config(values: Mapping[str, Any]) -> HwBuildConfig:
    """Build a HwBuildConfig from a mapping (e.g. parsed JSON); unknown keys are a ConfigError."""
    reject_unknown_keys(HwBuildConfig, values, "hw config")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        try:
            if key == "fifo_sizing":
                value = FifoSizing(value)
            elif key == "folding_preference":
                value = FoldingPreference(value)
            elif key == "optimize" and value is not None:
                value = Optimize(value)
            elif key == "preset":
                value = Preset(value)
            elif key == "build_dir" and value is not None:
                value = Path(value)
            elif key in ("clock_mhz", "optimize_margin"):
                value = float(value)
            elif key in ("target_cycles", "target_latency_cycles") and value is not None:
                value = int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value for hw config key '{key}': {value!r} ({exc})") from exc
        kwargs[key] = value
    return HwBuildConfig(**kwargs)
