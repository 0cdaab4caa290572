"""The driver logic both backends share: vectors in, bit-exact check, figures, board_report.json.

    golden floats --host.stream_inputs--> ints --host.pack_beats--> uint8 beats --accelerator-->
    uint8 beats --host.unpack_beats--> ints == host.expected_integers(golden floats) (bit-exact)
    ints --host.outputs--> model outputs --host.decide--> decisions

Then single-vector latency, batch throughput and power (idle / under load) from the backend,
and ``board_report.json``: a :class:`~qphy.contracts.Report` (the verdict's keys) with the
backend's figures as extras. A mismatch writes the report first, then raises BitMismatchError
naming the first differing vector and index.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitstreams.driver.accelerator import Accelerator
from bitstreams.driver.files import BOARD_REPORT, DeployFiles, Vectors, load_vectors, locate
from qphy import host
from qphy.contracts import Manifest, Report
from qphy.errors import BitMismatchError, ConfigError

log = logging.getLogger(__name__)

#: Budget when the directory holds no verdict to take it from (qphy.defaults.BUDGET_US).
DEFAULT_BUDGET_US = 1000.0
BACKENDS = ("board", "sim")


@dataclass(frozen=True)
class DriverConfig:
    """What one driver run does.

    Attributes:
        n_vectors: Vectors checked bit-exactly (None: all the directory holds).
        latency_runs: Single-frame round trips timed (a board; the simulation is exact).
        batch_vectors: Frames per batch for throughput and power (the checked vectors
            repeated; capped at what one DMA transfer moves).
        seconds: Duration of the throughput run and of each power phase (idle, load).
        budget_us: Latency budget (None: the verdict's, else 1000 us).
    """

    n_vectors: int | None = None
    latency_runs: int = 1000
    batch_vectors: int = 65536
    seconds: float = 2.0
    budget_us: float | None = None

    def __post_init__(self) -> None:
        if self.n_vectors is not None and self.n_vectors < 1:
            raise ConfigError(f"vectors must be >= 1, got {self.n_vectors}")
        if self.latency_runs < 1 or self.batch_vectors < 1:
            raise ConfigError("latency runs and batch vectors must be >= 1")
        if not self.seconds > 0:
            raise ConfigError(f"seconds must be > 0, got {self.seconds}")


def open_backend(kind: str, files: DeployFiles, **options) -> Accelerator:
    """The backend ``kind`` (``board`` or ``sim``) for a deployment's files."""
    if kind == "board":
        from bitstreams.driver.pynq_backend import PynqBackend  # noqa: PLC0415

        bitfile = options.pop("bitstream", None) or files.bitstream
        if bitfile is None:
            raise ConfigError(
                f"{files.root} holds no .bit: run on the board directory `qphy-board pack` made, "
                "or pass --bitstream FILE"
            )
        return PynqBackend(Path(bitfile), files.read_manifest(), **options)
    if kind == "sim":
        from bitstreams.driver.sim_backend import SimBackend  # noqa: PLC0415

        if files.rtl_dir is None:
            raise ConfigError(
                f"{files.root} holds no RTL: the sim backend runs a build directory (OUT of "
                "`qphy build`)"
            )
        return SimBackend(files.rtl_dir, **options)
    raise ConfigError(f"unknown backend {kind!r}: one of {', '.join(BACKENDS)}")


def first_mismatch(expected: np.ndarray, actual: np.ndarray) -> tuple[int, int, int]:
    """(mismatching vectors, first vector, first index); vectors never received count too."""
    got = len(actual)
    bad = np.flatnonzero(np.any(actual != expected[:got], axis=1)) if got else np.array([], int)
    count = len(bad) + (len(expected) - got)
    if len(bad):
        v = int(bad[0])
        return count, v, int(np.flatnonzero(actual[v] != expected[v])[0])
    return count, got, 0


def _host_outputs(actual: np.ndarray, vec: Vectors, manifest: Manifest) -> dict:
    """Model outputs and decisions from the accelerator's integers, against the golden floats."""
    spec = manifest.host
    k = min(len(actual), vec.n_float)
    y = host.outputs(actual[:k], spec)
    gold = vec.golden_out[:k].astype(np.float32)
    diff = float(np.max(np.abs(y.astype(np.float64) - gold))) if k else 0.0
    out = {"vectors": k, "max_abs_diff_vs_golden": diff, "decision": spec.decision}
    if spec.decision is not None:
        d, g = host.decide(y, spec), host.decide(gold, spec)
        out["decisions_differing_from_golden"] = int(np.count_nonzero(d != g))
    return out


def drive(
    accel: Accelerator,
    files: DeployFiles,
    cfg: DriverConfig = DriverConfig(),
    out: Path | None = None,
    vectors: Vectors | None = None,
) -> Report:
    """Run the driver on an open backend; write the report (``out``, default
    ``<dir>/board_report.json``) and return it. Raises BitMismatchError after writing it.
    ``vectors`` (default: :func:`load_vectors` of ``cfg.n_vectors``) are what is sent."""
    manifest = files.read_manifest()
    verdict = files.read_sim_report()
    vec = vectors if vectors is not None else load_vectors(files, manifest, cfg.n_vectors)
    n = len(vec.inputs)
    in_beats = host.pack_beats(vec.inputs, manifest.input)
    log.info("%s: %d vectors, %d beats of %d bytes", accel.name, n, *in_beats.shape)
    out_beats = accel.run(in_beats)
    o = manifest.output
    whole = len(out_beats) // o.beats_per_frame * o.beats_per_frame
    actual = host.unpack_beats(out_beats[:whole], o, vec.expected.shape[1])
    mismatches, first_v, first_i = first_mismatch(vec.expected, actual)

    frame = in_beats[: manifest.input.beats_per_frame]
    reps = -(-min(cfg.batch_vectors, 1 << 24) // n)
    batch = np.concatenate([in_beats] * reps) if reps > 1 else in_beats
    batch = batch[: cfg.batch_vectors * manifest.input.beats_per_frame]
    lat = accel.latency(frame, cfg.latency_runs)
    thr = accel.throughput(batch, cfg.seconds)
    pwr = accel.power(batch, cfg.seconds)

    clock = float(accel.clock_mhz)
    budget = cfg.budget_us or (verdict.budget_us if verdict is not None else DEFAULT_BUDGET_US)
    latency_us = lat.cycles / clock if lat.cycles is not None else lat.median_us
    hw_report = files.read_hw_report()
    variant = verdict.variant if verdict is not None else files.root.resolve().name
    report = Report(
        variant=variant,
        bit_exact=mismatches == 0,
        vectors_checked=n,
        mismatches=int(mismatches),
        latency_cycles=int(lat.cycles) if lat.cycles is not None else -1,
        cycles_per_frame=(
            int(round(thr.cycles_per_frame)) if thr.cycles_per_frame is not None else -1
        ),
        clock_mhz=clock,
        latency_us=round(latency_us, 6),
        throughput_vectors_per_s=round(thr.vectors_per_s, 1),
        budget_us=float(budget),
        within_budget=latency_us <= budget,
        fpga_part=manifest.fpga_part,
        estimated_resources=hw_report.get(
            "estimated_resources", verdict.estimated_resources if verdict else {}
        ),
        fifo_depths=hw_report.get("fifo_depths", verdict.fifo_depths if verdict else {}),
        tool_versions={"python": platform.python_version(), **accel.tool_versions()},
        extras={
            "backend": accel.name,
            "source": str(files.root.resolve()),
            "verdict_latency_cycles": verdict.latency_cycles if verdict else None,
            "verdict_cycles_per_frame": verdict.cycles_per_frame if verdict else None,
            "latency_distribution": lat.to_json(),
            "throughput": thr.to_json(),
            "power": pwr.to_json(),
            "energy_per_inference_j": pwr.energy_per_inference_j(),
            "total_energy_per_inference_j": pwr.total_energy_per_inference_j(),
            "host_outputs": _host_outputs(actual, vec, manifest),
            "first_mismatch": None
            if mismatches == 0
            else {
                "vector": first_v,
                "index": first_i,
                "expected": int(vec.expected[first_v, first_i]),
                "actual": int(actual[first_v, first_i]) if first_v < len(actual) else None,
            },
            "backend_details": accel.details(),
        },
    )
    path = Path(out) if out is not None else files.root / BOARD_REPORT
    report.write(path)
    log.info("wrote %s", path)
    if mismatches:
        fm = report.extras["first_mismatch"]
        raise BitMismatchError(
            f"{accel.name} vs golden",
            fm["vector"],
            fm["index"],
            fm["expected"],
            fm["actual"] if fm["actual"] is not None else "no output",
            mismatches=mismatches,
            vectors_checked=n,
        )
    return report


def run_driver(
    directory: Path,
    backend: str = "board",
    cfg: DriverConfig = DriverConfig(),
    out: Path | None = None,
    **backend_options,
) -> Report:
    """Locate a build or board directory, open ``backend`` on it, drive, close. The vectors
    are loaded (and checked) before the backend is opened: a bad request costs no build."""
    files = locate(Path(directory))
    vec = load_vectors(files, files.read_manifest(), cfg.n_vectors)
    with open_backend(backend, files, **backend_options) as accel:
        return drive(accel, files, cfg, out, vec)
