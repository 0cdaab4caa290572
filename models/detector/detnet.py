"""DetNet: a MIMO detector unrolled from projected gradient descent (Samuel et al., 2017).

Input: the real-valued received vector y (B, N) and the channel H (B, N, K) (or one (N, K)
shared by the batch), of the real model ``y = H x + n`` with BPSK symbols x in {-1, +1}^K
(:mod:`.mimo`). Output: the estimates of all L layers, shape (L, B, K); the last one is
the detector's soft output and its sign the hard decision.

Layer l (l = 1..L), with ``x_0 = 0`` and ``v_0 = 0``::

    z_l     = ReLU(W1_l [H^T y, x_{l-1}, H^T H x_{l-1}, v_{l-1}] + b1_l)   5K -> 8K
    x_new   = psi_{t_l}(W2_l z_l + b2_l)                                   8K -> K
    v_new   = W3_l z_l + b3_l                                              8K -> 2K
    x_l     = 0.1 * x_new + 0.9 * x_{l-1}          (``mix``; v mixed the same way)

with the piecewise-linear soft sign of a trainable threshold t (one scalar per layer)::

    psi_t(x) = -1 + ReLU(x + t) / |t| - ReLU(x - t) / |t|

(-1 below -t, +1 above t, linear in between). The training loss is :func:`detnet_loss`:
``sum_l log(l) * ||x - x_l||^2 / ||x - x_LS||^2`` (x_LS the least-squares estimate), averaged
over the batch. Note for hardware: ``H^T H x_{l-1}`` multiplies two run-time values; with a
fixed channel ``H^T H`` is a constant matrix.

Only the float network lives here (no training); training, the Green DetNet regularisers,
pruning and accounting are in :mod:`models.detector.detnet_train`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.registry import register
from qphy.errors import ConfigError


@dataclass(frozen=True)
class DetNetShape:
    """Sizes of DetNet.

    Attributes:
        n_rx: N, real received values per sample.
        k_tx: K, real transmitted symbols per sample.
        n_layers: L, unrolled layers.
        hidden_factor: The ReLU layer has ``hidden_factor * K`` units (8K in the paper).
        v_factor: The auxiliary vector v has ``v_factor * K`` entries (2K in the paper).
        mix: Weight of the new estimate in ``x_l = mix * new + (1 - mix) * old`` (0.1).
        t_init: Initial soft-sign threshold of every layer.
    """

    n_rx: int = 30
    k_tx: int = 20
    n_layers: int = 10
    hidden_factor: int = 8
    v_factor: int = 2
    mix: float = 0.1
    t_init: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_rx", "k_tx", "n_layers", "hidden_factor", "v_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DetNetShape.{name} must be a positive integer, got {value!r}")
        if not 0.0 < float(self.mix) <= 1.0:
            raise ConfigError(f"DetNetShape.mix must lie in (0, 1], got {self.mix!r}")
        if not float(self.t_init) > 0.0:
            raise ConfigError(f"DetNetShape.t_init must be > 0, got {self.t_init!r}")

    @property
    def hidden(self) -> int:
        return self.hidden_factor * self.k_tx

    @property
    def v_dim(self) -> int:
        return self.v_factor * self.k_tx

    @property
    def in_dim(self) -> int:
        """Width of a layer's input ``[H^T y, x, H^T H x, v]``: 3K + v_dim (5K by default)."""
        return 3 * self.k_tx + self.v_dim

    def layer_weights(self) -> int:
        """Weight-matrix entries of one layer (biases and t excluded)."""
        return self.hidden * (self.in_dim + self.k_tx + self.v_dim)

    def n_params(self) -> int:
        """Trainable parameters of the whole network (weights, biases, thresholds)."""
        per_layer = self.layer_weights() + self.hidden + self.k_tx + self.v_dim + 1
        return self.n_layers * per_layer


def soft_sign(x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The piecewise-linear soft sign ``-1 + ReLU(x + t)/|t| - ReLU(x - t)/|t|``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    at = t.abs()
    return -1.0 + torch.relu(x + t) / at - torch.relu(x - t) / at


class DetNetLayer(nn.Module):
    """One unrolled layer: ``fc`` (5K -> 8K, ReLU), ``out_x`` (8K -> K, soft sign), ``out_v``
    (8K -> 2K) and the soft-sign threshold ``t``."""

    def __init__(self, shape: DetNetShape):
        super().__init__()
        self.fc = nn.Linear(shape.in_dim, shape.hidden)
        self.out_x = nn.Linear(shape.hidden, shape.k_tx)
        self.out_v = nn.Linear(shape.hidden, shape.v_dim)
        self.t = nn.Parameter(torch.tensor(float(shape.t_init)))
        self.mix = float(shape.mix)

    def forward(
        self,
        hty: torch.Tensor,
        hth: torch.Tensor,
        x: torch.Tensor,
        v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from ``(x_{l-1}, v_{l-1})`` to ``(x_l, v_l)``.

        Args:
            hty: H^T y, (B, K).
            hth: H^T H, (B, K, K) or (K, K).
            x: Previous estimate, (B, K).
            v: Previous auxiliary vector, (B, v_dim).
        """
        hthx = torch.einsum("...ij,...j->...i", hth, x)
        z = torch.relu(self.fc(torch.cat([hty, x, hthx, v], dim=-1)))
        x_new = soft_sign(self.out_x(z), self.t)
        v_new = self.out_v(z)
        m = self.mix
        return m * x_new + (1.0 - m) * x, m * v_new + (1.0 - m) * v


def gram(y: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H^T y (B, K), H^T H)`` for H of shape (N, K) or (B, N, K).

    Raises:
        ConfigError: On inconsistent shapes.
    """
    if y.dim() != 2:
        raise ConfigError(f"y must have shape (B, N), got {tuple(y.shape)}")
    if h.dim() not in (2, 3) or h.shape[-2] != y.shape[-1]:
        raise ConfigError(
            f"H must have shape (N, K) or (B, N, K) with N = {y.shape[-1]}, got {tuple(h.shape)}"
        )
    if h.dim() == 3 and h.shape[0] != y.shape[0]:
        raise ConfigError(f"H holds {h.shape[0]} channels for {y.shape[0]} vectors")
    ht = h.transpose(-1, -2)
    hty = y @ h if h.dim() == 2 else torch.einsum("bnk,bn->bk", h, y)
    return hty, ht @ h


@register("detnet")
class DetNet(nn.Module):
    """Float DetNet; ``forward(y, H)`` returns every layer's estimate, shape (L, B, K).

    ``active_layers`` (default: all L) limits the forward pass to the first layers; incremental
    training (:func:`models.detector.detnet_train.incremental_train`) grows it stage by stage.
    """

    def __init__(self, shape: DetNetShape | None = None, **kwargs):
        super().__init__()
        if shape is not None and kwargs:
            raise ConfigError("give DetNet either a DetNetShape or keyword sizes, not both")
        self.shape = shape or DetNetShape(**kwargs)
        self.layers = nn.ModuleList(DetNetLayer(self.shape) for _ in range(self.shape.n_layers))
        self.active_layers = self.shape.n_layers

    def forward(
        self, y: torch.Tensor | tuple[torch.Tensor, torch.Tensor], h: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Estimates of the active layers.

        Args:
            y: Received vectors (B, N), or the pair ``(y, H)`` as one argument (the form in
                which :func:`quant.trainer.fit` hands over its inputs).
            h: Channel (N, K) or (B, N, K); omitted when ``y`` is the pair.

        Returns:
            Tensor (L_active, B, K): ``out[l]`` is x_{l+1}; ``out[-1]`` is the detector output.
        """
        if h is None:
            if not isinstance(y, tuple | list) or len(y) != 2:
                raise ConfigError("DetNet needs the channel: call model(y, H) or model((y, H))")
            y, h = y
        hty, hth = gram(y, h)
        b = y.shape[0]
        x = y.new_zeros(b, self.shape.k_tx)
        v = y.new_zeros(b, self.shape.v_dim)
        outs = []
        for layer in self.layers[: self.active_layers]:
            x, v = layer(hty, hth, x, v)
            outs.append(x)
        return torch.stack(outs)


def least_squares(y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The least-squares (zero-forcing) estimate ``(H^T H)^-1 H^T y``, (B, K)."""
    hty, hth = gram(y, h)
    if hth.dim() == 2:
        return torch.linalg.solve(hth, hty.T).T
    return torch.linalg.solve(hth, hty.unsqueeze(-1)).squeeze(-1)


def layer_loss_weights(n_layers: int) -> torch.Tensor:
    """``log(l)`` for l = 1..n_layers (the first layer's weight is log 1 = 0)."""
    return torch.tensor([math.log(layer) for layer in range(1, n_layers + 1)])


def detnet_loss(outputs: torch.Tensor, x: torch.Tensor, x_ls: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_l log(l) * ||x - x_l||^2 / ||x - x_LS||^2``.

    Args:
        outputs: Layer estimates (L, B, K), as :meth:`DetNet.forward` returns them.
        x: Transmitted symbols (B, K).
        x_ls: Least-squares estimates (B, K), see :func:`least_squares`.
    """
    w = layer_loss_weights(outputs.shape[0]).to(outputs)
    err = ((x.unsqueeze(0) - outputs) ** 2).sum(dim=-1)  # (L, B)
    ref = ((x - x_ls) ** 2).sum(dim=-1)  # (B,)
    return ((w[:, None] * err).sum(dim=0) / ref).mean()
