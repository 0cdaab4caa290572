"""Stage 1, models: float torch modules, a name registry, data generators and classical baselines.

Contract: no training, no quantization, no export. Everything here is plain torch/numpy and is
imported by ``quant`` (training, QAT) and by the evaluation code.
"""

from models.registry import build_model, model_names, register

__all__ = ["build_model", "model_names", "register"]
