"""Compression toolkit (Guo et al., "Compression and acceleration of neural networks for
communications"): passes of the one trainer, accounting, and experiments.

* :mod:`quant.compress.masks`: magnitude pruning of any model; :class:`MaskCallback` holds the
  pruned weights at zero through fine-tuning, QAT and export.
* :mod:`quant.compress.structured`: neuron pruning of FullyCon (L1 ranking, group lasso) and
  :func:`shrink` to a physically smaller model (:class:`FullyConWidths`).
* :mod:`quant.compress.sharing`: k-means weight sharing (:class:`WeightSharing` keeps the
  weights tied through fine-tuning) and :func:`snap_codebook_to_grid` (FINN-expressible).
* :mod:`quant.compress.lowrank`: truncated-SVD factorisation of FullyCon's linear layers.
* :mod:`quant.compress.distill`: :class:`Distillation`, a loss pass with a frozen teacher.
* :mod:`quant.compress.accounting`: weights, non-zeros, memory bits (dense/CSR, codebook),
  FLOPs.
* :mod:`quant.compress.passes`: fine-tuning through :func:`quant.trainer.fit`, a lean BER.
* :mod:`quant.compress.hardware`: RTL builds of (pruned) QAT detectors via qphy.flow.
* :mod:`quant.compress.experiments`: ``run_experiment(name, out_dir, grid)`` and the registry;
  the experiments in :mod:`quant.compress.exp_pruning`, :mod:`quant.compress.exp_quantization`,
  :mod:`quant.compress.exp_sharing`, :mod:`quant.compress.exp_lowrank` and
  :mod:`quant.compress.exp_distill`.
"""

from quant.compress.accounting import Account, SharedMemory, account, shared_memory
from quant.compress.distill import Distillation
from quant.compress.lowrank import LowRankLinear, factorize, factorize_linear, hidden_ranks
from quant.compress.masks import MaskCallback, apply_masks, magnitude_masks, sparsity
from quant.compress.sharing import (
    Codebook,
    SnappedLayer,
    WeightSharing,
    distinct_values,
    share_weights,
    snap_codebook_to_grid,
)
from quant.compress.structured import (
    FullyConWidths,
    GroupLasso,
    ZeroNeurons,
    neuron_masks,
    neuron_weight_masks,
    shrink,
    zero_neurons,
)

__all__ = [
    "Account",
    "Codebook",
    "Distillation",
    "FullyConWidths",
    "GroupLasso",
    "LowRankLinear",
    "MaskCallback",
    "SharedMemory",
    "SnappedLayer",
    "WeightSharing",
    "ZeroNeurons",
    "account",
    "apply_masks",
    "distinct_values",
    "factorize",
    "factorize_linear",
    "hidden_ranks",
    "magnitude_masks",
    "neuron_masks",
    "neuron_weight_masks",
    "share_weights",
    "shared_memory",
    "shrink",
    "snap_codebook_to_grid",
    "sparsity",
    "zero_neurons",
]
