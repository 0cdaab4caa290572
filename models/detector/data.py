"""Detection data as the quant stage uses it: the config mapping and the golden export inputs."""

from __future__ import annotations

import numpy as np

from models.detector.config import QuantConfig
from models.detector.mimo import ChannelKind, DetectionConfig, sample_numpy, uniform_snr_db

_CHANNELS = {"fixed": ChannelKind.FIXED_TOEPLITZ, "iid": ChannelKind.IID_GAUSSIAN}


def detection_config(cfg: QuantConfig, n_rx: int = 30, k_tx: int = 20) -> DetectionConfig:
    """The MIMO data configuration a QuantConfig trains and evaluates on."""
    return DetectionConfig(n_rx=n_rx, k_tx=k_tx, channel=_CHANNELS[cfg.channel])


def golden_inputs(
    det: DetectionConfig, n: int, input_scale: float, seed: int, input_bits: int = 8
) -> np.ndarray:
    """``n`` float32 detector inputs: the first half ordinary received vectors (SNR 8..13 dB),
    the second half scaled so that every one of them saturates the input quantizer.

    Each saturating vector is scaled so its largest element lands 1.5 to 4 times beyond the
    quantizer's full scale (``2**(input_bits-1) * input_scale``), so clipping is exercised on
    every such vector, with a spread of how many elements clip.
    """
    rng = np.random.default_rng(seed)
    snr = uniform_snr_db(n, 8.0, 13.0, rng)
    y = sample_numpy(det, n, snr, rng).y
    half = n // 2
    full_scale = 2 ** (input_bits - 1) * input_scale
    peak = np.max(np.abs(y[half:]), axis=1, keepdims=True)
    y[half:] *= rng.uniform(1.5, 4.0, size=(n - half, 1)) * full_scale / peak
    return y.astype(np.float32)
