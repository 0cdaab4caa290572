"""SimConfig: every knob of the RTL verification in one frozen dataclass, and its loader."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qphy.config import reject_unknown_keys
from qphy.defaults import BUDGET_US, SIM_SEED, SIM_VECTORS
from qphy.errors import ConfigError
from sim.cache import default_harness_cache


class Bench(enum.StrEnum):
    """Which testbench runs the verdict (both measure the same figures the same way)."""

    #: The compiled Verilator harness (sim/harness): C++ drives the ports, no Python per cycle.
    HARNESS = "harness"
    #: cocotb + cocotbext-axi (sim/tb_dataflow.py): the protocol-level bench.
    COCOTB = "cocotb"


@dataclass(frozen=True)
class SimConfig:
    """Configuration of the RTL simulation and verdict.

    Attributes:
        n_vectors: Vectors checked under backpressure (golden vectors are reused cyclically if
            the export holds fewer); CI uses >= 1000, the main job >= 10,000.
        seed: Seed of the backpressure patterns (and of generated inputs for user models).
        source_pause_prob: Probability that the source stalls on a given cycle.
        sink_pause_prob: Probability that the sink refuses a beat on a given cycle.
        n_burst: Frames in the back-to-back burst that measures steady-state cycles per frame.
        budget_us: Latency budget; a measured latency above it raises LatencyBudgetError.
        build_timeout_s: Wall-clock limit of the Verilator build; 0 scales it with the design
            (:mod:`sim.build_limit`: at least 900 s).
        sim_timeout_s: Wall-clock limit of one simulation run (a hang at time 0 is not caught
            by cocotb itself); a harness run gets ``sim.shards.RUN_S_PER_VECTOR`` more per
            vector, so a long healthy run is not cut.
        stall_limit_cycles: Cycles without output progress after which the bench declares a
            deadlock.
        bench: The testbench of the verdict.
        x_random: Build the harness with unknowns randomised (``--x-assign/--x-initial
            unique``, a per-run seed) instead of set to zero: a design that only works from
            zeroed registers fails then.
        harness_cache: Where compiled harnesses are cached by design content (absolute;
            default ``$QPHY_CACHE_DIR/harness``, i.e. ``~/.cache/qphy/harness``).
        progress: Show a progress bar during long harness runs.
        jobs: Harness processes the vectors are split over (disjoint slices, each from reset
            with its own backpressure seed); 0 means one per CPU core.
        ray_address: Run the shards as Ray tasks on this cluster (``auto``, ``ray://...``,
            ``local`` for an in-process instance); "" runs them here.
        bulk_no_assert: With several shards and more than ``ASSERT_SHARD_VECTORS`` vectors, shard
            0 keeps the RTL assertions over at least that many vectors while the other shards
            run a ``--no-assert`` build (faster).
        compiler: C++ compiler of the harness: ``g++``, ``clang++`` or ``auto`` (clang++ when
            installed).
        corner_vectors: End the verdict's vectors with those that drive every MVAU accumulator
            to its extremes (sim/coverage.py; they replace vectors generated beyond the
            export's golden ones, so a run needs more vectors than the export holds).
    """

    n_vectors: int = SIM_VECTORS
    seed: int = SIM_SEED
    source_pause_prob: float = 0.3
    sink_pause_prob: float = 0.3
    n_burst: int = 32
    budget_us: float = BUDGET_US
    build_timeout_s: float = 0.0
    sim_timeout_s: float = 900.0
    stall_limit_cycles: int = 100_000
    bench: Bench = Bench.HARNESS
    x_random: bool = False
    harness_cache: Path = field(default_factory=default_harness_cache)
    progress: bool = False
    jobs: int = 0
    ray_address: str = ""
    bulk_no_assert: bool = True
    compiler: str = "g++"
    corner_vectors: bool = True

    def __post_init__(self) -> None:
        if self.n_vectors < 1:
            raise ConfigError(f"n_vectors must be >= 1, got {self.n_vectors}")
        for name in ("source_pause_prob", "sink_pause_prob"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {p}")
        if not self.budget_us > 0:
            raise ConfigError(f"budget_us must be > 0, got {self.budget_us}")
        if not Path(self.harness_cache).is_absolute():
            raise ConfigError(f"harness_cache must be an absolute path, got {self.harness_cache}")
        if self.build_timeout_s < 0:
            raise ConfigError(
                f"build_timeout_s must be >= 0 (0: automatic), got {self.build_timeout_s}"
            )
        if self.jobs < 0:
            raise ConfigError(f"jobs must be >= 0 (0: one per core), got {self.jobs}")
        if self.compiler not in ("g++", "clang++", "auto"):
            raise ConfigError(f"compiler must be g++, clang++ or auto, got {self.compiler!r}")
        if self.n_burst < 2:
            raise ConfigError(f"n_burst must be >= 2, got {self.n_burst}")


def load_sim_config(values: Mapping[str, Any]) -> SimConfig:
    """Build a SimConfig from a mapping; unknown keys are a ConfigError."""
    reject_unknown_keys(SimConfig, values, "sim config")
    kwargs = {}
    for key, value in values.items():
        typ = type(getattr(SimConfig(), key))
        typ = Path if isinstance(getattr(SimConfig(), key), Path) else typ
        try:
            kwargs[key] = Bench(value) if key == "bench" else typ(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value for sim config key '{key}': {value!r}") from exc
    return SimConfig(**kwargs)
