"""MIMO detection data, generated on the fly (no data set is downloaded).

Contract: given a :class:`DetectionConfig`, an SNR (one value or one per sample) and a seeded
generator, :func:`sample_batch` returns a batch ``(y, x, H, sigma2)`` of the real-valued model

    y = H x + n,    x in {-1, +1}^K,    n ~ N(0, sigma2 * I_N),

with N = ``n_rx`` received and K = ``k_tx`` transmitted real dimensions (30 x 20 by default).
These sizes are always those of the *real* model a detector sees: N inputs, K outputs.

Modulation:
    * BPSK: x is K independent symbols in {-1, +1}.
    * QPSK: a complex system of N/2 receive and K/2 transmit antennas with symbols
      (+-1 +- 1j) is mapped to the real model by :func:`complex_to_real_channel` and
      :func:`complex_to_real_vector` (real parts first, then imaginary parts), so every real
      symbol is again a BPSK symbol in {-1, +1}. N and K must be even.

SNR convention (that of the original FullyCon/DetNet code, which scales H to
``trace(H^T H) / K = SNR`` under unit-variance noise; the same ratio is kept here with H
unscaled): the noise variance per real dimension is

    sigma2 = (||H||_F^2 / K) / SNR_linear,    SNR_linear = 10 ** (snr_db / 10),

computed on the real model and per sample when H varies from sample to sample. The overall
scale of H therefore does not change the detection problem.

Channels (:class:`ChannelKind`):
    * ``FIXED_TOEPLITZ``: one deterministic N x K matrix, see :func:`fixed_channel`. Its Gram
      matrix is exactly the Toeplitz correlation ``C[i, j] = rho ** |i - j|`` over the K
      transmit columns, which is the property of the 0.6-Toeplitz 30 x 20 channel of the
      FullyCon reference code (unit-norm columns, neighbouring columns correlated by rho).
    * ``IID_GAUSSIAN``: a new matrix per sample with i.i.d. N(0, 1/N) entries (QPSK: complex
      CN(0, 1/Nr) entries, i.e. N(0, 1/(2 Nr)) per real part).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy.fft import dct

from qphy.errors import ConfigError


class ChannelKind(enum.Enum):
    """Which channel matrix the samples see."""

    FIXED_TOEPLITZ = "fixed_toeplitz"
    IID_GAUSSIAN = "iid_gaussian"


class Modulation(enum.Enum):
    """Symbol alphabet; both give real symbols in {-1, +1} on the real model."""

    BPSK = "bpsk"
    QPSK = "qpsk"


def _coerce_enum(value: object, enum_type: type[enum.Enum], field: str) -> enum.Enum:
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        known = ", ".join(m.value for m in enum_type)
        raise ConfigError(f"{field}={value!r} is not one of: {known}") from None


@dataclass(frozen=True)
class DetectionConfig:
    """What a detection batch looks like.

    Attributes:
        n_rx: N, the number of real received values per sample (detector input width).
        k_tx: K, the number of real transmitted symbols per sample (detector output width).
        channel: Fixed Toeplitz channel or a fresh i.i.d. Gaussian channel per sample. A string
            equal to an enum value is accepted and converted.
        rho: Correlation of neighbouring transmit columns of the fixed channel, in [0, 1).
        modulation: BPSK, or QPSK as a real model of twice the complex sizes. A string equal to
            an enum value is accepted and converted.
    """

    n_rx: int = 30
    k_tx: int = 20
    channel: ChannelKind = ChannelKind.FIXED_TOEPLITZ
    rho: float = 0.6
    modulation: Modulation = Modulation.BPSK

    def __post_init__(self) -> None:
        # Frozen: conversions go through object.__setattr__.
        object.__setattr__(self, "channel", _coerce_enum(self.channel, ChannelKind, "channel"))
        object.__setattr__(
            self, "modulation", _coerce_enum(self.modulation, Modulation, "modulation")
        )
        for name in ("n_rx", "k_tx"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(self.rho) < 1.0:
            raise ConfigError(f"rho must lie in [0, 1), got {self.rho!r}")
        if self.modulation is Modulation.QPSK and (self.n_rx % 2 or self.k_tx % 2):
            raise ConfigError(
                f"QPSK needs even real sizes (2 x complex antennas), got n_rx={self.n_rx}, "
                f"k_tx={self.k_tx}"
            )
        if self.channel is ChannelKind.FIXED_TOEPLITZ and self.k_tx > self.n_rx:
            raise ConfigError(
                f"the fixed Toeplitz channel needs k_tx <= n_rx (full column rank), got "
                f"k_tx={self.k_tx} > n_rx={self.n_rx}"
            )

    @property
    def complex_sizes(self) -> tuple[int, int]:
        """(receive, transmit) antennas of the complex system (QPSK) or the real sizes (BPSK)."""
        if self.modulation is Modulation.QPSK:
            return self.n_rx // 2, self.k_tx // 2
        return self.n_rx, self.k_tx


class DetectionBatch(NamedTuple):
    """One batch; unpacks as ``y, x, H, sigma2``.

    Attributes:
        y: Received vectors, shape (B, N).
        x: Transmitted symbols in {-1, +1}, shape (B, K).
        H: Channel, shape (B, N, K) (for the torch batch of a fixed channel: a broadcast view
            of one matrix, do not write to it in place; the numpy batch keeps it (N, K)).
        sigma2: Noise variance per real dimension, shape (B,).
    """

    y: torch.Tensor | np.ndarray
    x: torch.Tensor | np.ndarray
    H: torch.Tensor | np.ndarray
    sigma2: torch.Tensor | np.ndarray

    def numpy(self) -> DetectionBatch:
        """The same batch as numpy arrays (a no-op for a numpy batch)."""
        return DetectionBatch(
            *(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in self)
        )


def complex_to_real_channel(h: np.ndarray) -> np.ndarray:
    """Real form of a complex channel: ``[[Re H, -Im H], [Im H, Re H]]``.

    With :func:`complex_to_real_vector` this maps ``y = H x + n`` (complex, Nr x Kc) to the
    equivalent real system of size 2 Nr x 2 Kc, in which a QPSK symbol ``a + 1j b`` becomes the
    two BPSK symbols ``a`` (index k) and ``b`` (index Kc + k).

    Args:
        h: Complex channel, shape (..., Nr, Kc).

    Returns:
        Real channel, shape (..., 2 Nr, 2 Kc).
    """
    h = np.asarray(h)
    top = np.concatenate([h.real, -h.imag], axis=-1)
    bottom = np.concatenate([h.imag, h.real], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def complex_to_real_vector(v: np.ndarray) -> np.ndarray:
    """Real form ``[Re v, Im v]`` of complex vectors, shape (..., M) -> (..., 2 M)."""
    v = np.asarray(v)
    return np.concatenate([v.real, v.imag], axis=-1)


def real_to_complex_vector(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`complex_to_real_vector`, shape (..., 2 M) -> (..., M)."""
    v = np.asarray(v)
    if v.shape[-1] % 2:
        raise ConfigError(f"a real-form vector has an even length, got {v.shape[-1]}")
    m = v.shape[-1] // 2
    return v[..., :m] + 1j * v[..., m:]


def toeplitz_correlation(k: int, rho: float) -> np.ndarray:
    """The K x K correlation matrix ``C[i, j] = rho ** |i - j|``."""
    idx = np.arange(k)
    return float(rho) ** np.abs(idx[:, None] - idx[None, :])


def _toeplitz_real(n: int, k: int, rho: float) -> np.ndarray:
    # H = Q C^{1/2}: Q (n x k, orthonormal columns) = the first k orthonormal DCT-II basis
    # vectors of R^n, C^{1/2} the symmetric square root. Then H^T H = C exactly; the BER of any
    # detector depends on H only through H^T H (up to a rotation of y), and Q spreads the signal
    # over all n receive rows instead of leaving n - k rows empty.
    q = dct(np.eye(n), type=2, norm="ortho", axis=0).T[:, :k]
    w, v = np.linalg.eigh(toeplitz_correlation(k, rho))
    c_half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return q @ c_half


def fixed_channel(cfg: DetectionConfig) -> np.ndarray:
    """The deterministic Toeplitz-correlated channel of ``cfg`` (no randomness).

    Construction: ``H = Q C^{1/2}`` with ``C[i, j] = rho ** |i - j|`` (K x K), ``C^{1/2}`` its
    symmetric square root and ``Q`` the first K orthonormal DCT-II basis vectors of R^N. So
    ``H^T H = C``: unit-norm columns, correlation rho between neighbouring transmit columns,
    ``||H||_F^2 = K``. For QPSK the same construction at the complex sizes (Nr x Kc, real
    valued) is put in real form with :func:`complex_to_real_channel`.

    Args:
        cfg: A config with ``channel == ChannelKind.FIXED_TOEPLITZ``.

    Returns:
        The real N x K channel, float64.

    Raises:
        ConfigError: If ``cfg`` asks for the i.i.d. channel, which has no fixed matrix.
    """
    if cfg.channel is not ChannelKind.FIXED_TOEPLITZ:
        raise ConfigError(f"channel {cfg.channel.value} has no fixed matrix")
    nr, kc = cfg.complex_sizes
    h = _toeplitz_real(nr, kc, cfg.rho)
    if cfg.modulation is Modulation.QPSK:
        h = complex_to_real_channel(h.astype(np.complex128))
    return h


def noise_variance(h: np.ndarray, snr_db: float | np.ndarray) -> np.ndarray:
    """Noise variance per real dimension, ``(||H||_F^2 / K) / 10 ** (snr_db / 10)``.

    Args:
        h: Real channel(s), shape (N, K) or (B, N, K).
        snr_db: SNR in dB, a scalar or shape (B,).

    Returns:
        Array broadcast over the batch: shape () for one H and a scalar SNR, else (B,).
    """
    h = np.asarray(h, dtype=np.float64)
    energy = np.sum(h * h, axis=(-2, -1)) / h.shape[-1]
    return energy / 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)


def _numpy_rng(generator: torch.Generator | np.random.Generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        # One draw from the torch generator seeds the numpy stream: one code path, and the
        # torch generator advances, so successive calls give new batches.
        seed = torch.randint(0, 2**62, (1,), generator=generator).item()
        return np.random.default_rng(seed)
    raise ConfigError(
        f"generator must be a torch.Generator or numpy.random.Generator, got {type(generator)}"
    )


def _snr_array(snr_db: float | np.ndarray | torch.Tensor, batch: int) -> np.ndarray:
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.detach().cpu().numpy()
    snr = np.asarray(snr_db, dtype=np.float64)
    if snr.ndim == 0:
        snr = np.full(batch, float(snr))
    if snr.shape != (batch,):
        raise ConfigError(f"snr_db must be a scalar or have shape ({batch},), got {snr.shape}")
    if not np.all(np.isfinite(snr)):
        raise ConfigError("snr_db must be finite")
    return snr


def _iid_channel(cfg: DetectionConfig, batch: int, rng: np.random.Generator) -> np.ndarray:
    nr, kc = cfg.complex_sizes
    if cfg.modulation is Modulation.QPSK:
        scale = np.sqrt(0.5 / nr)
        hc = rng.standard_normal((batch, nr, kc)) + 1j * rng.standard_normal((batch, nr, kc))
        return complex_to_real_channel(hc * scale)
    return rng.standard_normal((batch, nr, kc)) / np.sqrt(nr)


def sample_numpy(
    cfg: DetectionConfig,
    batch: int,
    snr_db: float | np.ndarray,
    generator: torch.Generator | np.random.Generator,
) -> DetectionBatch:
    """Like :func:`sample_batch`, but float64 numpy arrays and, for the fixed channel, H (N, K).

    Args:
        cfg: Detection config.
        batch: Number of samples B (> 0).
        snr_db: SNR in dB, a scalar or one per sample (shape (B,)).
        generator: Seeded numpy or torch generator; it is advanced.

    Returns:
        ``DetectionBatch(y, x, H, sigma2)`` of numpy arrays.

    Raises:
        ConfigError: On a non-positive batch or a badly shaped SNR.
    """
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch <= 0:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    snr = _snr_array(snr_db, batch)
    rng = _numpy_rng(generator)
    x = rng.integers(0, 2, size=(batch, cfg.k_tx)).astype(np.float64) * 2.0 - 1.0
    if cfg.channel is ChannelKind.FIXED_TOEPLITZ:
        h = fixed_channel(cfg)
        hx = x @ h.T
    else:
        h = _iid_channel(cfg, batch, rng)
        hx = np.einsum("bnk,bk->bn", h, x)
    sigma2 = np.broadcast_to(noise_variance(h, snr), (batch,)).copy()
    y = hx + rng.standard_normal((batch, cfg.n_rx)) * np.sqrt(sigma2)[:, None]
    return DetectionBatch(y, x, h, sigma2)


def sample_batch(
    cfg: DetectionConfig,
    batch: int,
    snr_db: float | np.ndarray | torch.Tensor,
    generator: torch.Generator | np.random.Generator,
) -> DetectionBatch:
    """Draw a batch ``(y, x, H, sigma2)`` as float32 torch tensors.

    The same generator state gives the same batch. ``.numpy()`` on the result gives numpy
    arrays; :func:`sample_numpy` gives float64 arrays directly.

    Args:
        cfg: Detection config.
        batch: Number of samples B (> 0).
        snr_db: SNR in dB, a scalar or one per sample (shape (B,), e.g. from
            :func:`uniform_snr_db` to train over a range).
        generator: Seeded ``torch.Generator`` or ``numpy.random.Generator``; it is advanced.

    Returns:
        ``DetectionBatch`` with y (B, N), x (B, K), H (B, N, K) and sigma2 (B,). For the fixed
        channel H is a broadcast (expanded) view of one matrix.

    Raises:
        ConfigError: On a non-positive batch or a badly shaped SNR.
    """
    b = sample_numpy(cfg, batch, snr_db, generator)
    h = torch.from_numpy(b.H.astype(np.float32))
    if h.dim() == 2:
        h = h.expand(batch, *h.shape)
    return DetectionBatch(
        torch.from_numpy(b.y.astype(np.float32)),
        torch.from_numpy(b.x.astype(np.float32)),
        h,
        torch.from_numpy(b.sigma2.astype(np.float32)),
    )


def uniform_snr_db(
    batch: int,
    low_db: float,
    high_db: float,
    generator: torch.Generator | np.random.Generator,
) -> np.ndarray:
    """Per-sample SNRs drawn uniformly in dB from [low_db, high_db], shape (B,).

    Raises:
        ConfigError: If ``low_db > high_db``.
    """
    if low_db > high_db:
        raise ConfigError(f"SNR range is empty: low_db={low_db} > high_db={high_db}")
    return _numpy_rng(generator).uniform(low_db, high_db, size=batch)
