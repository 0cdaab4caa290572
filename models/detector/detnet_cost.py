"""Green DetNet's accounting of a DetNet: memory in MB of the non-zero weights at 32 bit and
FLOPs per detected vector (every add and multiply one FLOP), over its active layers.

Its own module, below both the DetNet trainer (:mod:`models.detector.detnet_train`, which reports
it) and the sparsity passes (:mod:`models.detector.green`), so neither imports the other back.
"""

from __future__ import annotations

from models.detector.detnet import DetNet
from quant.compress.accounting import FLOAT_BITS, Account, account


def detnet_flops(model: DetNet, with_gram: bool = True) -> dict[str, int]:
    """FLOPs per detected vector, every add and multiply one FLOP (activations not counted).

    * ``weights``: the linear layers with zeros skipped, ``2 * nnz`` (a row of ``nz`` non-zero
      weights: nz multiplies, nz - 1 adds and the bias add), as :mod:`quant.compress.accounting`.
    * ``hty``: ``H^T y``, K (2N - 1).
    * ``gram``: ``H^T H``, K^2 (2N - 1): per channel, not per vector when H is fixed for a
      block; left out with ``with_gram=False``.
    * ``hthx``: ``H^T H x_{l-1}`` per layer, K (2K - 1). (Layer 1 has x_0 = 0 and could skip it;
      counted anyway.)
    * ``soft_sign``: per output 2 adds (x +- t), 2 multiplies (by 1/|t|), 2 adds: 6 K per layer.
    * ``mix``: ``0.1 new + 0.9 old`` on x and v: 3 (K + v_dim) per layer.
    """
    s = model.shape
    n, k, layers = s.n_rx, s.k_tx, model.active_layers
    out = {
        "weights": sum(a.flops_sparse for a in _active_account(model).layers),
        "hty": k * (2 * n - 1),
        "gram": k * k * (2 * n - 1) if with_gram else 0,
        "hthx": layers * k * (2 * k - 1),
        "soft_sign": layers * 6 * k,
        "mix": layers * 3 * (k + s.v_dim),
    }
    out["total"] = sum(out.values())
    return out


def _active_account(model: DetNet) -> Account:
    """:func:`quant.compress.accounting.account` of the active layers only (32-bit values)."""
    acc = account(model, value_bits=FLOAT_BITS)
    # Layer names are "layers.<index>.<fc|out_x|out_v>".
    return Account(tuple(a for a in acc.layers if int(a.name.split(".")[1]) < model.active_layers))


def detnet_account(model: DetNet) -> dict:
    """The paper's figures for ``model`` (its active layers).

    Returns:
        ``{"weights", "nonzero_weights", "pruned_fraction", "memory_mb", "dense_memory_mb",
        "flops", "flops_dense_weights"}``: memory is ``nonzero * 32 bit`` in MB (10^6 bytes),
        weights only (biases and thresholds are few and not counted, as in the paper);
        ``flops`` is :func:`detnet_flops`.
    """
    acc = _active_account(model)
    return {
        "weights": acc.weights,
        "nonzero_weights": acc.nonzero,
        "pruned_fraction": acc.pruned_fraction,
        "memory_mb": acc.nonzero * FLOAT_BITS / 8 / 1e6,
        "dense_memory_mb": acc.weights * FLOAT_BITS / 8 / 1e6,
        "flops": detnet_flops(model),
        "flops_dense_weights": acc.flops_dense,
    }
