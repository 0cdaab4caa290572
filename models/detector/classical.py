"""Classical MIMO detectors for the real model ``y = H x + n``, x in {-1, +1}^K.

Contract: numpy in, numpy out. Every detector takes y of shape (B, N) (or (N,)) and H of shape
(N, K), shared by the whole batch, or (B, N, K), one per sample, and returns hard decisions in
{-1, +1} of shape (B, K) (or (K,)), float64.

* :func:`zf`: zero forcing, ``sign(pinv(H) y)``.
* :func:`mmse`: linear MMSE, ``sign((H^T H + sigma2 I)^-1 H^T y)`` (unit-energy BPSK symbols).
* :func:`ml_sphere`: exact maximum likelihood, ``argmin_x ||y - H x||^2`` over {-1, +1}^K, by a
  Schnorr-Euchner depth-first sphere decoder with radius shrinking on the QR decomposition.

:func:`baseline_ber` measures all three on data from :mod:`models.detector.mimo`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.detector.mimo import DetectionConfig, sample_numpy
from qphy.errors import ConfigError

# Samples simulated per call of the data generator in baseline_ber (bounds memory).
_CHUNK = 4000


def _as_batch(y: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Check shapes; returns (y (B, N), H (N, K) or (B, N, K), whether y was one vector)."""
    y = np.asarray(y, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    single = y.ndim == 1
    if single:
        y = y[None, :]
    if y.ndim != 2:
        raise ConfigError(f"y must have shape (N,) or (B, N), got {y.shape}")
    if h.ndim not in (2, 3):
        raise ConfigError(f"H must have shape (N, K) or (B, N, K), got {h.shape}")
    if h.shape[-2] != y.shape[-1]:
        raise ConfigError(f"H has {h.shape[-2]} rows but y has {y.shape[-1]} entries")
    if h.ndim == 3 and h.shape[0] != y.shape[0]:
        raise ConfigError(f"H holds {h.shape[0]} channels for {y.shape[0]} vectors")
    return y, h, single


def _hard(x: np.ndarray) -> np.ndarray:
    # sign() with 0 -> +1 (a tie has probability zero but must still give a symbol).
    return np.where(x < 0.0, -1.0, 1.0)


def _out(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


def zf_estimate(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Soft zero-forcing (least-squares) estimate ``pinv(H) y``, shape (B, K) or (K,)."""
    y, h, single = _as_batch(y, h)
    if h.ndim == 2:
        return _out(y @ np.linalg.pinv(h).T, single)
    return _out(np.einsum("bkn,bn->bk", np.linalg.pinv(h), y), single)


def mmse_estimate(y: np.ndarray, h: np.ndarray, sigma2: float | np.ndarray) -> np.ndarray:
    """Soft linear MMSE estimate ``(H^T H + sigma2 I)^-1 H^T y`` for unit-energy symbols.

    Args:
        y: Received vectors, (B, N) or (N,).
        h: Channel (N, K) or (B, N, K).
        sigma2: Noise variance per real dimension, a scalar or one per vector (B,).

    Returns:
        Soft estimates, (B, K) or (K,).
    """
    y, h, single = _as_batch(y, h)
    b, k = y.shape[0], h.shape[-1]
    s2 = np.broadcast_to(np.asarray(sigma2, dtype=np.float64), (b,))
    gram = np.swapaxes(h, -1, -2) @ h  # (K, K) or (B, K, K)
    hty = y @ h if h.ndim == 2 else np.einsum("bnk,bn->bk", h, y)
    a = gram + s2[:, None, None] * np.eye(k)  # (B, K, K) either way
    return _out(np.linalg.solve(a, hty[..., None])[..., 0], single)


def zf(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Zero-forcing hard decisions ``sign(pinv(H) y)`` in {-1, +1}."""
    return _hard(zf_estimate(y, h))


def mmse(y: np.ndarray, h: np.ndarray, sigma2: float | np.ndarray) -> np.ndarray:
    """Linear MMSE hard decisions ``sign((H^T H + sigma2 I)^-1 H^T y)`` in {-1, +1}."""
    return _hard(mmse_estimate(y, h, sigma2))


def _sorted_qr(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QR with columns ordered so that the decoder meets the strongest levels first.

    Sorted QR (Wuebben et al.): modified Gram-Schmidt that takes the remaining column of
    smallest norm at each step. Those land on the top rows of R, which the depth-first search
    visits last, so the early (root) levels have large |R_kk| and prune well. Any order gives
    the same (exact) ML answer; this one only makes the search shorter.

    Args:
        h: Channels, (B, N, K) with N >= K.

    Returns:
        (Q^T (B, K, N), R (B, K, K) upper triangular, perm (B, K)) with H[:, :, perm] = Q R.
    """
    b, n, k = h.shape
    q = h.copy()
    r = np.zeros((b, k, k))
    perm = np.tile(np.arange(k), (b, 1))
    rows = np.arange(b)
    for i in range(k):
        norms = np.einsum("bnk,bnk->bk", q[:, :, i:], q[:, :, i:])
        j = i + np.argmin(norms, axis=1)
        # Swap column i with the chosen column j in Q, R (rows above i) and perm.
        for arr in (q, r):
            col_i = arr[rows, :, i].copy()
            arr[rows, :, i] = arr[rows, :, j]
            arr[rows, :, j] = col_i
        p_i = perm[rows, i].copy()
        perm[rows, i] = perm[rows, j]
        perm[rows, j] = p_i
        rii = np.sqrt(np.einsum("bn,bn->b", q[:, :, i], q[:, :, i]))
        if np.any(rii <= 1e-12 * max(1.0, float(np.abs(h).max()))):
            raise ConfigError("ml_sphere needs H of full column rank; H is (nearly) singular")
        r[:, i, i] = rii
        q[:, :, i] /= rii[:, None]
        if i + 1 < k:
            proj = np.einsum("bn,bnk->bk", q[:, :, i], q[:, :, i + 1 :])
            r[:, i, i + 1 :] = proj
            q[:, :, i + 1 :] -= q[:, :, i : i + 1] * proj[:, None, :]
    return np.swapaxes(q, 1, 2), r, perm


def _sphere_search(z: np.ndarray, r: np.ndarray, ridx: np.ndarray | None) -> np.ndarray:
    """Exact ``argmin_x ||z - R x||^2`` over {-1, +1}^K for a batch, all vectors in lockstep.

    Schnorr-Euchner depth first from level K-1 down to 0: at each level the closer symbol
    ``sign(c)`` of the two is tried first; a leaf shrinks the radius to its distance. The
    radius starts at the Babai (successive interference cancellation) point, which is the
    answer when nothing strictly closer exists. One loop iteration visits one node of every
    still-searching vector; finished vectors are dropped from the arrays now and then.

    Args:
        z: Rotated received vectors Q^T y, (B, K).
        r: Upper-triangular factors, (K, K) shared or (M, K, K).
        ridx: For per-vector factors, the index into ``r`` of each vector (B,); else None.

    Returns:
        Decisions in {-1, +1}, (B, K), in the column order of R.
    """
    b, k = z.shape
    diag = np.diagonal(r, axis1=-2, axis2=-1)  # (K,) or (M, K)
    inv_diag = 1.0 / diag
    diag2 = diag * diag

    def rows_of(level: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, ...]:
        if ridx is None:
            return r[level], inv_diag[level], diag2[level]
        m = ridx[which]
        return r[m, level], inv_diag[m, level], diag2[m, level]

    # Babai point and its distance: the initial radius.
    everyone = np.arange(b)
    x = np.zeros((b, k))
    dist = np.zeros((b, k + 1))  # dist[:, l] = partial distance of levels l..K-1
    for level in range(k - 1, -1, -1):
        lv = np.full(b, level)
        row, inv, d2 = rows_of(lv, everyone)
        c = (z[:, level] - np.einsum("bk,bk->b", row, x)) * inv
        x[:, level] = _hard(c)
        dist[:, level] = dist[:, level + 1] + d2 * (c - x[:, level]) ** 2
    best = x.copy()
    radius2 = dist[:, 0].copy()

    # Depth-first state of the searching vectors (indices `act` into the batch).
    act = everyone.copy()
    za = z
    xa = np.zeros((b, k))
    da = np.zeros((b, k + 1))
    ca = np.zeros((b, k))
    tried = np.zeros((b, k), dtype=np.int8)  # children tried at each level: 0, 1 or 2
    lev = np.full(b, k - 1)
    r2a = radius2.copy()
    it = 0
    while act.size:
        n_act = act.size
        ia = np.arange(n_act)
        tr = tried[ia, lev]
        fresh = tr == 0
        row, inv, d2 = rows_of(lev, act)
        # Lower entries of xa are stale but R is upper triangular and xa[lev] is 0 on entry.
        c = np.where(fresh, (za[ia, lev] - np.einsum("bk,bk->b", row, xa)) * inv, ca[ia, lev])
        ca[ia, lev] = c
        first = _hard(c)
        cand = np.where(fresh, first, -first)
        d = da[ia, lev + 1] + d2 * (c - cand) ** 2
        ok = (tr < 2) & (d < r2a)
        tried[ia, lev] = np.where(ok, tr + 1, tr)
        xa[ia, lev] = np.where(ok, cand, xa[ia, lev])
        da[ia, lev] = np.where(ok, d, da[ia, lev])
        leaf = ok & (lev == 0)
        if leaf.any():
            r2a[leaf] = d[leaf]
            best[act[leaf]] = xa[leaf]
        down = ok & (lev > 0)
        # A leaf's sibling is farther than the new radius: go up after a leaf too.
        lev = np.where(down, lev - 1, lev + 1)
        if down.any():
            i_down = ia[down]
            tried[i_down, lev[down]] = 0
            xa[i_down, lev[down]] = 0.0
        done = lev >= k
        it += 1
        if done.any() and not done.all() and it % 8:
            # Park finished vectors on a node whose children are all tried: they stay done.
            lev[done] = k - 1
            tried[ia[done], k - 1] = 2
        elif done.any():
            keep = ~done
            act, za, xa, da, ca = act[keep], za[keep], xa[keep], da[keep], ca[keep]
            tried, lev, r2a = tried[keep], lev[keep], r2a[keep]
    return best


def ml_sphere(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Exact maximum-likelihood BPSK decisions ``argmin_{x in {-1,1}^K} ||y - H x||^2``.

    Sphere decoder (Schnorr-Euchner enumeration, depth first, radius shrinking) on the sorted QR
    decomposition of H, computed once for a shared H and once per sample otherwise. The
    constant ``||y||^2 - ||Q^T y||^2`` is dropped; it does not change the argmin.

    Args:
        y: Received vectors, (B, N) or (N,).
        h: Channel (N, K) or (B, N, K), full column rank, N >= K.

    Returns:
        Decisions in {-1, +1}, (B, K) or (K,).

    Raises:
        ConfigError: On bad shapes, N < K or a singular H.
    """
    y, h, single = _as_batch(y, h)
    n, k = h.shape[-2:]
    if k > n:
        raise ConfigError(f"ml_sphere needs N >= K, got H with N={n} < K={k}")
    if h.ndim == 2:
        qt, r, perm = _sorted_qr(h[None])
        z = y @ qt[0].T
        xs = _sphere_search(z, r[0], None)
        x = np.empty_like(xs)
        x[:, perm[0]] = xs
    else:
        qt, r, perm = _sorted_qr(h)
        z = np.einsum("bkn,bn->bk", qt, y)
        xs = _sphere_search(z, r, np.arange(y.shape[0]))
        x = np.empty_like(xs)
        np.put_along_axis(x, perm, xs, axis=1)
    return _out(x, single)


def ber(x_hat: np.ndarray, x: np.ndarray) -> float:
    """Bit error rate: the fraction of entries where the decision differs from the symbol.

    Both arguments hold symbols in {-1, +1} (any real dtype; x_hat is compared by sign).

    Raises:
        ConfigError: If the shapes differ or there is nothing to compare.
    """
    x_hat = np.asarray(x_hat)
    x = np.asarray(x)
    if x_hat.shape != x.shape:
        raise ConfigError(f"x_hat has shape {x_hat.shape} but x has {x.shape}")
    if x.size == 0:
        raise ConfigError("ber of an empty array")
    return float(np.mean(_hard(x_hat) != _hard(x)))


def baseline_ber(
    cfg: DetectionConfig,
    snr_db_list: Sequence[float],
    n_bits: int,
    seed: int,
    detectors: Sequence[str] = ("zf", "mmse", "ml"),
) -> dict[str, list[float]]:
    """BER of the classical detectors on data from :func:`models.detector.mimo.sample_numpy`.

    Args:
        cfg: Detection config (channel, sizes, modulation).
        snr_db_list: SNRs in dB.
        n_bits: Bits per SNR point; rounded up to whole vectors of K bits.
        seed: Seed of the data; each SNR point gets its own stream derived from it.
        detectors: Which of "zf", "mmse", "ml" to run.

    Returns:
        ``{"snr_db": [...], "zf": [...], "mmse": [...], "ml": [...]}`` (only the requested
        detectors), one BER per SNR.

    Raises:
        ConfigError: On an unknown detector name or a non-positive ``n_bits``.
    """
    known = ("zf", "mmse", "ml")
    unknown = [d for d in detectors if d not in known]
    if unknown:
        raise ConfigError(f"unknown detector(s) {unknown}; known: {', '.join(known)}")
    if n_bits <= 0:
        raise ConfigError(f"n_bits must be positive, got {n_bits}")
    n_vec = -(-int(n_bits) // cfg.k_tx)
    out: dict[str, list[float]] = {"snr_db": [float(s) for s in snr_db_list]}
    out.update({d: [] for d in detectors})
    seeds = np.random.SeedSequence(seed).spawn(len(snr_db_list))
    for snr_db, ss in zip(snr_db_list, seeds, strict=True):
        rng = np.random.default_rng(ss)
        errors = dict.fromkeys(detectors, 0)
        left = n_vec
        while left > 0:
            m = min(left, _CHUNK)
            y, x, h, s2 = sample_numpy(cfg, m, float(snr_db), rng)
            for d in detectors:
                if d == "zf":
                    x_hat = zf(y, h)
                elif d == "mmse":
                    x_hat = mmse(y, h, s2)
                else:
                    x_hat = ml_sphere(y, h)
                errors[d] += int(np.count_nonzero(x_hat != x))
            left -= m
        for d in detectors:
            out[d].append(errors[d] / (n_vec * cfg.k_tx))
    return out
