"""Tests of the on-the-fly MIMO detection data (models/detector/mimo.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.detector.mimo import (
    ChannelKind,
    DetectionConfig,
    Modulation,
    complex_to_real_channel,
    complex_to_real_vector,
    fixed_channel,
    noise_variance,
    real_to_complex_vector,
    sample_batch,
    sample_numpy,
    toeplitz_correlation,
    uniform_snr_db,
)
from qphy.errors import ConfigError

FIXED = DetectionConfig()
IID = DetectionConfig(channel=ChannelKind.IID_GAUSSIAN)


def test_defaults_are_30x20_bpsk_toeplitz_06():
    assert (FIXED.n_rx, FIXED.k_tx, FIXED.rho) == (30, 20, 0.6)
    assert FIXED.channel is ChannelKind.FIXED_TOEPLITZ
    assert FIXED.modulation is Modulation.BPSK


def test_fixed_channel_gram_is_toeplitz_and_deterministic():
    h = fixed_channel(FIXED)
    assert h.shape == (30, 20)
    np.testing.assert_allclose(h.T @ h, toeplitz_correlation(20, 0.6), atol=1e-12)
    assert np.array_equal(h, fixed_channel(DetectionConfig()))
    # Spread over all receive rows (no empty rows).
    assert np.all(np.linalg.norm(h, axis=1) > 0.05)


def test_fixed_channel_qpsk_is_real_form_of_complex_toeplitz():
    cfg = DetectionConfig(n_rx=12, k_tx=8, modulation="qpsk")
    h = fixed_channel(cfg)
    assert h.shape == (12, 8)
    hc = fixed_channel(DetectionConfig(n_rx=6, k_tx=4)).astype(complex)
    assert np.array_equal(h, complex_to_real_channel(hc))


def test_string_enums_are_converted():
    cfg = DetectionConfig(channel="iid_gaussian", modulation="qpsk")
    assert cfg.channel is ChannelKind.IID_GAUSSIAN
    assert cfg.modulation is Modulation.QPSK


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rx": 0}, "n_rx must be a positive integer"),
        ({"k_tx": -3}, "k_tx must be a positive integer"),
        ({"n_rx": 30.0}, "n_rx must be a positive integer"),
        ({"rho": 1.0}, r"rho must lie in \[0, 1\)"),
        ({"rho": -0.1}, r"rho must lie in \[0, 1\)"),
        ({"n_rx": 20, "k_tx": 30}, "needs k_tx <= n_rx"),
        ({"n_rx": 31, "modulation": Modulation.QPSK}, "QPSK needs even real sizes"),
        ({"channel": "rayleigh"}, "channel='rayleigh' is not one of"),
        ({"modulation": "16qam"}, "modulation='16qam' is not one of"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DetectionConfig(**kwargs)


def test_iid_allows_more_tx_than_rx_but_has_no_fixed_matrix():
    cfg = DetectionConfig(n_rx=4, k_tx=6, channel=ChannelKind.IID_GAUSSIAN)
    assert sample_numpy(cfg, 3, 10.0, np.random.default_rng(0)).H.shape == (3, 4, 6)
    with pytest.raises(ConfigError, match="has no fixed matrix"):
        fixed_channel(cfg)


@pytest.mark.parametrize("cfg", [FIXED, IID], ids=["fixed", "iid"])
def test_sample_batch_shapes_dtypes_and_model(cfg):
    b = sample_batch(cfg, 64, 10.0, torch.Generator().manual_seed(0))
    y, x, h, s2 = b
    assert y.shape == (64, 30) and x.shape == (64, 20)
    assert h.shape == (64, 30, 20) and s2.shape == (64,)
    assert all(t.dtype == torch.float32 for t in b)
    assert set(torch.unique(x).tolist()) <= {-1.0, 1.0}
    n = b.numpy()
    assert isinstance(n.y, np.ndarray)
    # The noise y - Hx has the announced per-sample variance.
    resid = n.y - np.einsum("bnk,bk->bn", n.H, n.x)
    ratio = np.mean(resid**2 / n.sigma2[:, None])
    assert 0.9 < ratio < 1.1


def test_snr_convention_is_frobenius_over_k():
    h = fixed_channel(FIXED)
    s2 = noise_variance(h, 10.0)
    np.testing.assert_allclose(s2, (np.sum(h**2) / 20) / 10.0)
    # Fixed channel: ||H||_F^2 = K, so sigma2 = 1 / SNR.
    b = sample_numpy(FIXED, 8, np.array([0.0, 10, 20, 3, 3, 3, 3, 3]), np.random.default_rng(1))
    np.testing.assert_allclose(b.sigma2[:3], [1.0, 0.1, 0.01])
    # i.i.d.: per-sample H, per-sample sigma2; the scale of H cancels.
    b = sample_numpy(IID, 5, 10.0, np.random.default_rng(2))
    np.testing.assert_allclose(b.sigma2, np.sum(b.H**2, axis=(1, 2)) / 20 / 10.0)


def test_empirical_snr_matches_definition():
    b = sample_numpy(IID, 4000, 10.0, np.random.default_rng(3))
    signal = np.einsum("bnk,bk->bn", b.H, b.x)
    noise = b.y - signal
    # E||Hx||^2 = ||H||_F^2 for i.i.d. +-1 symbols, so SNR = (||H||_F^2 / K) / sigma2 per K.
    snr = np.mean(np.sum(signal**2, 1)) / 20 / np.mean(np.sum(noise**2, 1) / 30)
    assert 9.0 < 10 * np.log10(snr) < 11.0


def test_iid_channel_entries_are_n01_over_n():
    h = sample_numpy(IID, 2000, 10.0, np.random.default_rng(4)).H
    assert abs(h.mean()) < 0.005
    assert abs(h.var() * 30 - 1.0) < 0.02
    # A new channel per sample.
    assert not np.allclose(h[0], h[1])


def test_seeded_reproducible_and_advancing():
    a = sample_batch(IID, 16, 10.0, torch.Generator().manual_seed(7))
    b = sample_batch(IID, 16, 10.0, torch.Generator().manual_seed(7))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    g = np.random.default_rng(7)
    c, d = sample_batch(IID, 16, 10.0, g), sample_batch(IID, 16, 10.0, g)
    assert not torch.equal(c.y, d.y)
    e = sample_numpy(FIXED, 16, 10.0, np.random.default_rng(7))
    f = sample_batch(FIXED, 16, 10.0, np.random.default_rng(7))
    np.testing.assert_allclose(f.y.numpy(), e.y, rtol=1e-6, atol=1e-6)


def test_per_sample_snr_array_and_tensor():
    snr = uniform_snr_db(32, 7.0, 14.0, np.random.default_rng(0))
    assert snr.shape == (32,) and snr.min() >= 7.0 and snr.max() <= 14.0
    b1 = sample_batch(FIXED, 32, snr, np.random.default_rng(1))
    b2 = sample_batch(FIXED, 32, torch.tensor(snr), np.random.default_rng(1))
    assert torch.equal(b1.sigma2, b2.sigma2)
    np.testing.assert_allclose(b1.sigma2.numpy(), 10 ** (-snr / 10), rtol=1e-6)


@pytest.mark.parametrize(
    ("batch", "snr", "match"),
    [
        (0, 10.0, "batch must be a positive integer"),
        (4, np.zeros(3), r"snr_db must be a scalar or have shape \(4,\)"),
        (4, np.array([1.0, np.nan, 1, 1]), "snr_db must be finite"),
    ],
)
def test_bad_sample_arguments_raise(batch, snr, match):
    with pytest.raises(ConfigError, match=match):
        sample_batch(FIXED, batch, snr, np.random.default_rng(0))


def test_bad_generator_and_snr_range_raise():
    with pytest.raises(ConfigError, match="generator must be"):
        sample_batch(FIXED, 4, 10.0, 1234)
    with pytest.raises(ConfigError, match="SNR range is empty"):
        uniform_snr_db(4, 10.0, 5.0, np.random.default_rng(0))


def test_complex_to_real_maps_the_system_exactly():
    rng = np.random.default_rng(5)
    hc = rng.standard_normal((3, 2, 4)) + 1j * rng.standard_normal((3, 2, 4))
    xc = rng.choice([-1.0, 1.0], (3, 4)) + 1j * rng.choice([-1.0, 1.0], (3, 4))
    nc = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    yc = np.einsum("bnk,bk->bn", hc, xc) + nc
    hr, xr, yr = complex_to_real_channel(hc), complex_to_real_vector(xc), complex_to_real_vector(yc)
    assert hr.shape == (3, 4, 8)
    np.testing.assert_allclose(np.einsum("bnk,bk->bn", hr, xr) + complex_to_real_vector(nc), yr)
    np.testing.assert_array_equal(real_to_complex_vector(xr), xc)
    with pytest.raises(ConfigError, match="even length"):
        real_to_complex_vector(np.zeros(3))


def test_qpsk_iid_batch_has_real_form_structure():
    cfg = DetectionConfig(n_rx=8, k_tx=6, channel="iid_gaussian", modulation="qpsk")
    h = sample_numpy(cfg, 4, 10.0, np.random.default_rng(6)).H
    a, b = h[:, :4, :3], h[:, 4:, :3]
    np.testing.assert_array_equal(h[:, :4, 3:], -b)
    np.testing.assert_array_equal(h[:, 4:, 3:], a)
