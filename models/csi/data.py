"""CSI-feedback data: angular-delay channel matrices from 3GPP TR 38.901 (no download).

Contract: a :class:`CsiDataConfig` fully determines a data set.
:func:`models.csi.store.load_or_generate` returns a :class:`CsiDataset` whose ``x`` has shape
``(n_samples, 2, n_delay_taps, n_antennas)`` (real part, imaginary part), float32 in [0, 1], the
input and target of the CsiNet-style autoencoders (``models/csi/csinet.py``). Sets are cached on
disk under a caller-given directory, keyed by a content hash of the config, and are reproducible
from the seed.

Generation (the TR 38.901 channel, processing steps 1-3) lives in :mod:`models.csi.channel`, the
on-disk cache in :mod:`models.csi.store`; this module holds the config, the data set, its
splits, the scaling and the NMSE (imported by both, importing neither).

Scaling (step 4 of the CsiNet-convention processing, :func:`scale_to_unit`):
    4. Per-sample scaling to [0, 1]: x = h / (2 * peak) + 0.5 with peak = max(|Re h|, |Im h|),
       so the largest component touches 0 or 1. ``CsiDataset.peak`` keeps the peak, so
       h = (x - 0.5) * 2 * peak. A fixed per-data-set scale would squash most drops to ~0.5
       (path loss spans tens of dB between drops). The NMSE is a per-sample ratio, so it is
       identical on x - 0.5 and on h: :func:`nmse_db_scaled` needs no peak.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from qphy.defaults import CACHE_DIR
from qphy.errors import ConfigError

log = logging.getLogger(__name__)

#: Bump when the generation or the file layout changes: old cache files are then ignored.
FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = CACHE_DIR / "csi"


class Scenario(enum.Enum):
    """Propagation scenario (TR 38.901 model)."""

    INDOOR = "indoor"  # InH, open office
    OUTDOOR = "outdoor"  # UMi street canyon, outdoor UEs


_DEFAULT_CARRIER_HZ = {Scenario.INDOOR: 5.3e9, Scenario.OUTDOOR: 3.5e9}


@dataclass(frozen=True)
class CsiDataConfig:
    """Everything that determines a generated CSI data set (and its cache key).

    Attributes:
        scenario: ``INDOOR`` (InH) or ``OUTDOOR`` (UMi); strings are accepted.
        n_samples: Number of samples (one independent UE drop each).
        seed: Seed of sionna's random generators for this set.
        n_antennas: BS antennas (ULA elements); also the number of angular bins.
        n_subcarriers: OFDM subcarriers N of the frequency response.
        n_delay_taps: Delay taps kept after the IFFT (<= n_subcarriers).
        carrier_frequency_hz: Carrier; ``None`` picks 5.3 GHz indoor, 3.5 GHz outdoor.
        subcarrier_spacing_hz: Subcarrier spacing; the band is n_subcarriers * spacing.
        batch_size: Drops per sionna call. Part of the key: it changes the random streams.
    """

    scenario: Scenario = Scenario.INDOOR
    n_samples: int = 1000
    seed: int = 0
    n_antennas: int = 32
    n_subcarriers: int = 1024
    n_delay_taps: int = 32
    carrier_frequency_hz: float | None = None
    subcarrier_spacing_hz: float = 30e3
    batch_size: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, Scenario):
            try:
                object.__setattr__(self, "scenario", Scenario(self.scenario))
            except ValueError:
                known = ", ".join(s.value for s in Scenario)
                raise ConfigError(
                    f"unknown CSI scenario {self.scenario!r}; known: {known}"
                ) from None
        for name in ("n_samples", "n_antennas", "n_subcarriers", "n_delay_taps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.n_delay_taps > self.n_subcarriers:
            raise ConfigError(
                f"n_delay_taps={self.n_delay_taps} exceeds n_subcarriers={self.n_subcarriers}"
            )
        if self.carrier_frequency_hz is None:
            object.__setattr__(self, "carrier_frequency_hz", _DEFAULT_CARRIER_HZ[self.scenario])
        for name in ("carrier_frequency_hz", "subcarrier_spacing_hz"):
            if not float(getattr(self, name)) > 0.0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def bandwidth_hz(self) -> float:
        """Occupied band, n_subcarriers * subcarrier_spacing_hz."""
        return self.n_subcarriers * self.subcarrier_spacing_hz

    @property
    def tap_spacing_s(self) -> float:
        """Delay resolution of one tap, 1 / bandwidth."""
        return 1.0 / self.bandwidth_hz

    @property
    def codeword_input_size(self) -> int:
        """Real values per sample, 2 * n_delay_taps * n_antennas (2048 by default)."""
        return 2 * self.n_delay_taps * self.n_antennas

    def to_json(self) -> dict:
        """Plain JSON-able dict (enum as its value)."""
        data = dataclasses.asdict(self)
        data["scenario"] = self.scenario.value
        return data

    def cache_key(self) -> str:
        """sha256 of the canonical JSON of config, format version and sionna version."""
        import sionna

        payload = {
            "config": self.to_json(),
            "format_version": FORMAT_VERSION,
            "sionna": sionna.__version__,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def cache_path(self, cache_dir: Path) -> Path:
        """File of this set under ``cache_dir``."""
        name = f"csi_{self.scenario.value}_n{self.n_samples}_s{self.seed}_{self.cache_key()[:16]}"
        return Path(cache_dir) / f"{name}.npz"


@dataclass(frozen=True)
class CsiDataset:
    """A generated set.

    Attributes:
        x: ``(n, 2, n_delay_taps, n_antennas)`` float32 in [0, 1]: real and imaginary parts
            of the angular-delay matrix, scaled per sample (see the module docstring).
        peak: ``(n,)`` float64, the per-sample peak used for scaling: h = (x - 0.5) * 2 * peak.
        config: The generator config.
    """

    x: np.ndarray
    peak: np.ndarray
    config: CsiDataConfig

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def complex_matrices(self) -> np.ndarray:
        """Unscaled complex angular-delay matrices, ``(n, n_delay_taps, n_antennas)``."""
        return scaled_to_complex(self.x) * (2.0 * self.peak)[:, None, None]

    def subset(self, start: int, stop: int) -> CsiDataset:
        """Samples ``start:stop`` (a view, same config)."""
        return CsiDataset(self.x[start:stop], self.peak[start:stop], self.config)

    def tensor(self) -> torch.Tensor:
        """``x`` as a float32 torch tensor (shares memory)."""
        return torch.from_numpy(self.x)


class CsiSplits(NamedTuple):
    """Train / validation / test parts of one data set."""

    train: CsiDataset
    val: CsiDataset
    test: CsiDataset


def scale_to_unit(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complex ``(n, R, C)`` -> (``(n, 2, R, C)`` float32 in [0, 1], ``(n,)`` peak)."""
    parts = np.stack([h.real, h.imag], axis=1).astype(np.float64)
    peak = np.abs(parts).reshape(len(h), -1).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0)
    x = parts / (2.0 * peak[:, None, None, None]) + 0.5
    return np.clip(x, 0.0, 1.0).astype(np.float32), peak


# ---------------------------------------------------------------------------------------------
# Splits (the on-disk cache is models.csi.store)
# ---------------------------------------------------------------------------------------------


def split(ds: CsiDataset, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> CsiSplits:
    """Contiguous train/val/test parts (the drops are i.i.d., so no shuffle is needed).

    Raises:
        ConfigError: Fractions not positive, not summing to 1, or leaving a part empty.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(f"split fractions must be 3 positive numbers summing to 1: {fractions}")
    n = len(ds)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    if n_train == 0 or n_val == 0 or n - n_train - n_val <= 0:
        raise ConfigError(f"{n} samples are too few for splits {fractions}")
    return CsiSplits(
        ds.subset(0, n_train), ds.subset(n_train, n_train + n_val), ds.subset(n_train + n_val, n)
    )


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

Array = np.ndarray | torch.Tensor


def scaled_to_complex(x: Array) -> Array:
    """``(n, 2, R, C)`` [0, 1]-scaled real tensor -> centred complex ``(n, R, C)`` (x - 0.5).

    The result is h / (2 * peak): the complex matrix up to a per-sample scale, which is all
    the NMSE needs. Works on numpy arrays and torch tensors.
    """
    if isinstance(x, torch.Tensor):
        return torch.complex(x[:, 0] - 0.5, x[:, 1] - 0.5)
    return (x[:, 0] - 0.5) + 1j * (x[:, 1] - 0.5)


def nmse_db(h_true: Array, h_hat: Array) -> float:
    """10 log10 of the mean over samples of ||h - h_hat||^2 / ||h||^2 (complex, any shape).

    The first axis indexes samples. The NMSE of a sample with itself is -inf.
    """
    if isinstance(h_true, torch.Tensor) or isinstance(h_hat, torch.Tensor):
        h_true = torch.as_tensor(h_true).detach().cpu().numpy()
        h_hat = torch.as_tensor(h_hat).detach().cpu().numpy()
    h_true = np.asarray(h_true).reshape(len(h_true), -1)
    h_hat = np.asarray(h_hat).reshape(len(h_hat), -1)
    err = np.sum(np.abs(h_true - h_hat) ** 2, axis=1, dtype=np.float64)
    ref = np.sum(np.abs(h_true) ** 2, axis=1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(np.mean(err / ref)))


def nmse_db_scaled(x_true: Array, x_hat: Array) -> float:
    """NMSE in dB of two ``(n, 2, R, C)`` [0, 1]-scaled tensors, on the complex matrices."""
    return nmse_db(scaled_to_complex(x_true), scaled_to_complex(x_hat))


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsiStats:
    """Figures that tell scenarios apart and catch degenerate (near-identical) sets.

    Attributes:
        entries_for_90pct: Mean number of the largest |h|^2 entries holding 90 % of a sample's
            energy (of n_delay_taps * n_antennas): the sparsity in the angular-delay domain.
        delay_spread_taps: Mean RMS delay spread of the kept taps, in taps.
        angle_spread_bins: Mean RMS angular spread, in angular bins.
        magnitude_similarity: Mean cosine similarity of the |h| patterns of distinct samples
            (1 = identical patterns; the CDL sets the design notes warn about are near 1).
        complex_similarity: Mean |<h_i, h_j>| / (||h_i|| ||h_j||) between distinct samples.
    """

    entries_for_90pct: float
    delay_spread_taps: float
    angle_spread_bins: float
    magnitude_similarity: float
    complex_similarity: float


def _rms_spread(power: np.ndarray) -> np.ndarray:
    idx = np.arange(power.shape[1])
    p = power / power.sum(axis=1, keepdims=True)
    mean = p @ idx
    return np.sqrt(np.maximum(p @ idx**2 - mean**2, 0.0))


def csi_statistics(ds: CsiDataset, max_pairs: int = 2000, seed: int = 0) -> CsiStats:
    """Sparsity, spreads and inter-sample similarity of a set (needs >= 2 samples)."""
    if len(ds) < 2:
        raise ConfigError("csi_statistics needs at least 2 samples")
    h = scaled_to_complex(ds.x).reshape(len(ds), -1)
    power = np.abs(h) ** 2
    frac = np.sort(power, axis=1)[:, ::-1].cumsum(axis=1) / power.sum(axis=1, keepdims=True)
    entries = (frac < 0.9).sum(axis=1) + 1
    grid = power.reshape(ds.x.shape[0], ds.x.shape[2], ds.x.shape[3])
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(ds), max_pairs)
    j = (i + rng.integers(1, len(ds), max_pairs)) % len(ds)
    mag = np.abs(h) / np.linalg.norm(h, axis=1, keepdims=True)
    unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    return CsiStats(
        entries_for_90pct=float(entries.mean()),
        delay_spread_taps=float(_rms_spread(grid.sum(axis=2)).mean()),
        angle_spread_bins=float(_rms_spread(grid.sum(axis=1)).mean()),
        magnitude_similarity=float(np.mean(np.sum(mag[i] * mag[j], axis=1))),
        complex_similarity=float(np.mean(np.abs(np.sum(unit[i] * unit[j].conj(), axis=1)))),
    )
