"""Low-rank factorisation of fully connected layers (truncated SVD), fine-tuned with the trainer.

Contract: :func:`factorize_linear` turns ``nn.Linear(in, out)`` into a :class:`LowRankLinear`:
``Linear(in, r, bias=False)`` followed by ``Linear(r, out)`` (the original bias), from the
truncated SVD ``W = U S V^T`` with ``sqrt(S)`` split between the two factors (first ``sqrt(S_r)
V_r^T``, second ``U_r sqrt(S_r)``): at full rank it computes the same function, at rank ``r``
the best rank-``r`` approximation of ``W`` (Eckart-Young). A network family applies it to its
own layers (e.g. :func:`models.detector.lowrank.factorize`) and fine-tunes with the one trainer
(no pass needed). The factorised model's accounting (:func:`quant.compress.accounting.account`)
counts both factors as layers: weights ``r * (in + out)`` instead of ``in * out``, FLOPs per
frame ``2 r (in + out)``; a layer saves weights only when ``r < in * out / (in + out)`` (100 for
a 200x200 layer).

FINN: a factorised layer is two MatMuls with no nonlinearity between them; a QAT version would
need a quantizer on the rank-``r`` intermediate (FINN builds two MVAUs), which is not done here:
this module compresses float models.
"""

from __future__ import annotations

import torch
from torch import nn

from qphy.errors import ConfigError


class LowRankLinear(nn.Module):
    """``second(first(x))``: ``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def factorize_linear(layer: nn.Linear, rank: int) -> LowRankLinear:
    """The rank-``rank`` truncated-SVD factorisation of ``layer`` (a new module).

    The SVD is computed in float64 and split ``sqrt(S)`` to each factor, so both factors have
    the same scale (better conditioned for fine-tuning than ``U`` and ``S V^T``).

    Raises:
        ConfigError: ``rank`` is not in ``1..min(in, out)``.
    """
    n_out, n_in = layer.weight.shape
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n_in, n_out):
        raise ConfigError(
            f"rank of a {n_in}->{n_out} layer must be an integer in 1..{min(n_in, n_out)}, "
            f"got {rank!r}"
        )
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(layer.weight.detach().to(torch.float64), full_matrices=False)
        root = torch.sqrt(s[:rank])
        out = LowRankLinear(n_in, n_out, rank, bias=layer.bias is not None)
        dtype = layer.weight.dtype
        out.first.weight.copy_((root[:, None] * vh[:rank]).to(dtype))
        out.second.weight.copy_((u[:, :rank] * root[None, :]).to(dtype))
        if layer.bias is not None:
            out.second.bias.copy_(layer.bias.detach())
    return out
