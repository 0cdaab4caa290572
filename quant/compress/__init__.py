"""Compression toolkit (Guo et al., "Compression and acceleration of neural networks for
communications"): passes of the one trainer, accounting, and experiments.

* :mod:`quant.compress.masks`: magnitude pruning of any model; :class:`MaskCallback` holds the
  pruned weights at zero through fine-tuning, QAT and export.
* :mod:`quant.compress.structured`: neuron pruning of FullyCon (L1 ranking, group lasso) and
  :func:`shrink` to a physically smaller model (:class:`FullyConWidths`).
* :mod:`quant.compress.accounting`: weights, non-zeros, memory bits (dense/CSR), FLOPs.
* :mod:`quant.compress.passes`: fine-tuning through :func:`quant.trainer.fit`, a lean BER.
* :mod:`quant.compress.hardware`: RTL builds of (pruned) QAT detectors via qphy.flow.
* :mod:`quant.compress.experiments`: ``run_experiment(name, out_dir, grid)`` and the registry;
  the experiments in :mod:`quant.compress.exp_pruning` and :mod:`quant.compress.exp_quantization`.
"""

from quant.compress.accounting import Account, account
from quant.compress.masks import MaskCallback, apply_masks, magnitude_masks, sparsity
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
    "FullyConWidths",
    "GroupLasso",
    "MaskCallback",
    "ZeroNeurons",
    "account",
    "apply_masks",
    "magnitude_masks",
    "neuron_masks",
    "neuron_weight_masks",
    "shrink",
    "sparsity",
    "zero_neurons",
]
