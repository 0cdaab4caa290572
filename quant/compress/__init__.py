"""Compression passes of the one trainer, for any torch model (Guo et al., "Compression and
acceleration of neural networks for communications"), and their accounting.

* :mod:`quant.compress.masks`: magnitude pruning of any model; :class:`MaskCallback` holds the
  pruned weights at zero through fine-tuning, QAT and export.
* :mod:`quant.compress.sharing`: k-means weight sharing (:class:`WeightSharing` keeps the
  weights tied through fine-tuning) and :func:`snap_codebook_to_grid` (FINN-expressible).
* :mod:`quant.compress.lowrank`: truncated-SVD factorisation of one linear layer.
* :mod:`quant.compress.distill`: :class:`Distillation`, a loss pass with a frozen teacher.
* :mod:`quant.compress.accounting`: weights, non-zeros, memory bits (dense/CSR, codebook),
  FLOPs.

Network-specific passes live with their family (e.g. FullyCon's neuron pruning in
:mod:`models.detector.structured`, its low-rank layers in :mod:`models.detector.lowrank`); the
studies that use them are in ``experiments/``.
"""

from quant.compress.accounting import Account, SharedMemory, account, shared_memory
from quant.compress.distill import Distillation
from quant.compress.lowrank import LowRankLinear, factorize_linear
from quant.compress.masks import MaskCallback, apply_masks, magnitude_masks, sparsity
from quant.compress.sharing import (
    Codebook,
    SnappedLayer,
    WeightSharing,
    distinct_values,
    share_weights,
    snap_codebook_to_grid,
)

__all__ = [
    "Account",
    "Codebook",
    "Distillation",
    "LowRankLinear",
    "MaskCallback",
    "SharedMemory",
    "SnappedLayer",
    "WeightSharing",
    "account",
    "apply_masks",
    "distinct_values",
    "factorize_linear",
    "magnitude_masks",
    "share_weights",
    "shared_memory",
    "snap_codebook_to_grid",
    "sparsity",
]
