"""Tests of the classical detectors (models/detector/classical.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.detector.classical import (
    baseline_ber,
    ber,
    ml_sphere,
    mmse,
    mmse_estimate,
    zf,
    zf_estimate,
)
from models.detector.mimo import ChannelKind, DetectionConfig, sample_numpy
from qphy.errors import ConfigError


def _brute_force_ml(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    k = h.shape[-1]
    cands = np.array(list(itertools.product([-1.0, 1.0], repeat=k)))  # (2^K, K)
    hb = np.broadcast_to(h, (y.shape[0], *h.shape[-2:]))
    dist = np.sum((y[:, None, :] - np.einsum("bnk,ck->bcn", hb, cands)) ** 2, axis=-1)
    return cands[np.argmin(dist, axis=1)]


def _system(rng, b, n, k, snr_db, shared):
    h = rng.standard_normal((n, k) if shared else (b, n, k))
    hb = np.broadcast_to(h, (b, n, k))
    x = rng.choice([-1.0, 1.0], (b, k))
    s2 = np.sum(hb**2, axis=(1, 2)) / k / 10 ** (snr_db / 10)
    y = np.einsum("bnk,bk->bn", hb, x) + rng.standard_normal((b, n)) * np.sqrt(s2)[:, None]
    return y, x, h, s2


def test_zf_and_mmse_closed_form_tiny():
    h = np.array([[1.0, 0.5], [0.2, 1.0], [0.3, -0.4]])
    y = np.array([0.7, -1.1, 0.4])
    s2 = 0.3
    ls = np.linalg.solve(h.T @ h, h.T @ y)
    lmmse = np.linalg.solve(h.T @ h + s2 * np.eye(2), h.T @ y)
    np.testing.assert_allclose(zf_estimate(y, h), ls, rtol=1e-12)
    np.testing.assert_allclose(mmse_estimate(y, h, s2), lmmse, rtol=1e-12)
    np.testing.assert_array_equal(zf(y, h), np.sign(ls))
    np.testing.assert_array_equal(mmse(y, h, s2), np.sign(lmmse))


def test_batched_per_sample_h_equals_loop():
    rng = np.random.default_rng(0)
    y, _, h, s2 = _system(rng, 12, 5, 3, 5.0, shared=False)
    for i in range(12):
        np.testing.assert_allclose(zf_estimate(y, h)[i], np.linalg.pinv(h[i]) @ y[i])
        want = np.linalg.solve(h[i].T @ h[i] + s2[i] * np.eye(3), h[i].T @ y[i])
        np.testing.assert_allclose(mmse_estimate(y, h, s2)[i], want)


@pytest.mark.parametrize("shared", [True, False], ids=["shared_h", "per_sample_h"])
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 6.0])
def test_sphere_equals_brute_force(shared, snr_db):
    rng = np.random.default_rng(int(snr_db) + 10 + 100 * shared)
    y, _, h, _ = _system(rng, 1500, 8, 6, snr_db, shared)
    np.testing.assert_array_equal(ml_sphere(y, h), _brute_force_ml(y, h))


def test_sphere_equals_brute_force_on_correlated_channel():
    # Strongly correlated columns make the QR ordering and radius pruning matter.
    rng = np.random.default_rng(11)
    idx = np.arange(7)
    c = 0.9 ** np.abs(idx[:, None] - idx[None, :])
    h = rng.standard_normal((9, 7)) @ np.linalg.cholesky(c).T
    x = rng.choice([-1.0, 1.0], (1000, 7))
    y = x @ h.T + rng.standard_normal((1000, 9)) * 0.8
    np.testing.assert_array_equal(ml_sphere(y, h), _brute_force_ml(y, h))


def test_sphere_single_vector_and_noiseless():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((30, 20))
    x = rng.choice([-1.0, 1.0], 20)
    np.testing.assert_array_equal(ml_sphere(h @ x, h), x)


def test_sphere_is_at_least_as_good_as_mmse():
    # ML minimises ||y - Hx||: no other decision (here MMSE's) can be strictly closer.
    cfg = DetectionConfig(channel=ChannelKind.IID_GAUSSIAN)
    y, _, h, s2 = sample_numpy(cfg, 500, 6.0, np.random.default_rng(2))
    d_ml = np.sum((y - np.einsum("bnk,bk->bn", h, ml_sphere(y, h))) ** 2, 1)
    d_mmse = np.sum((y - np.einsum("bnk,bk->bn", h, mmse(y, h, s2))) ** 2, 1)
    assert np.all(d_ml <= d_mmse + 1e-9)


def test_fixed_toeplitz_ber_at_10db_matches_reference():
    # Reference (DESIGN.md): MMSE 1.2e-2, ML 2.8e-3 at 10 dB on 30x20 Toeplitz-0.6 BPSK.
    res = baseline_ber(DetectionConfig(), [10.0], n_bits=400_000, seed=0)
    assert 1e-3 <= res["ml"][0] <= 6e-3
    assert 6e-3 <= res["mmse"][0] <= 2e-2
    assert res["ml"][0] < res["mmse"][0] < res["zf"][0]


def test_iid_ber_at_10db_matches_reference():
    # Reference: MMSE 2.1e-2, ML 2.3e-3 at 10 dB on 30x20 i.i.d. Gaussian BPSK.
    cfg = DetectionConfig(channel=ChannelKind.IID_GAUSSIAN)
    res = baseline_ber(cfg, [10.0], n_bits=60_000, seed=0, detectors=("mmse", "ml"))
    assert 1e-3 <= res["ml"][0] <= 6e-3
    assert 1.4e-2 <= res["mmse"][0] <= 3e-2


def test_baseline_ber_is_seeded_and_keyed():
    cfg = DetectionConfig(n_rx=8, k_tx=4)
    a = baseline_ber(cfg, [0.0, 4.0], n_bits=2000, seed=5)
    b = baseline_ber(cfg, [0.0, 4.0], n_bits=2000, seed=5)
    assert a == b
    assert set(a) == {"snr_db", "zf", "mmse", "ml"}
    assert a["snr_db"] == [0.0, 4.0]
    assert a["ml"][1] < a["ml"][0]


def test_baseline_ber_qpsk_runs():
    cfg = DetectionConfig(n_rx=8, k_tx=6, channel="iid_gaussian", modulation="qpsk")
    res = baseline_ber(cfg, [5.0], n_bits=3000, seed=1)
    assert 0.0 < res["ml"][0] <= res["mmse"][0] <= 0.5


def test_ber_helper():
    x = np.array([[1.0, -1.0, 1.0, 1.0]])
    assert ber(np.array([[1, -1, -1, 1]]), x) == 0.25
    assert ber(x, x) == 0.0
    with pytest.raises(ConfigError, match="x_hat has shape"):
        ber(x[0], x)
    with pytest.raises(ConfigError, match="empty"):
        ber(np.zeros((0, 2)), np.zeros((0, 2)))


@pytest.mark.parametrize(
    ("y", "h", "match"),
    [
        (np.zeros((2, 5)), np.zeros((4, 3)), "H has 4 rows but y has 5 entries"),
        (np.zeros((2, 4)), np.zeros((3, 4, 3)), "H holds 3 channels for 2 vectors"),
        (np.zeros((2, 2, 4)), np.zeros((4, 3)), r"y must have shape \(N,\) or \(B, N\)"),
        (np.zeros((2, 4)), np.zeros(4), r"H must have shape \(N, K\) or \(B, N, K\)"),
    ],
)
def test_bad_shapes_raise(y, h, match):
    with pytest.raises(ConfigError, match=match):
        zf(y, h)


def test_sphere_rejects_wide_or_singular_channel():
    with pytest.raises(ConfigError, match="needs N >= K"):
        ml_sphere(np.zeros((1, 3)), np.ones((3, 4)))
    h = np.ones((4, 2))
    with pytest.raises(ConfigError, match="full column rank"):
        ml_sphere(np.zeros((1, 4)), h)


def test_baseline_ber_bad_arguments():
    with pytest.raises(ConfigError, match="unknown detector"):
        baseline_ber(DetectionConfig(), [10.0], 100, 0, detectors=("zf", "bp"))
    with pytest.raises(ConfigError, match="n_bits must be positive"):
        baseline_ber(DetectionConfig(), [10.0], 0, 0)
