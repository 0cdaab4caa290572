"""Weight sharing (Han et al., "Deep Compression"): per-layer k-means codebooks, fine-tuned.

Contract: :func:`share_weights` clusters the weights of every linear/conv layer of a (float)
model into ``2^B`` centroids (1-D k-means, centroids initialised linearly over ``[min, max]`` of
the layer's weights as Han et al. recommend), replaces each weight by its centroid and returns
one :class:`Codebook` (centroids + per-weight cluster index) per layer. :class:`WeightSharing`
is a pass of the one trainer (:func:`quant.trainer.fit`): it ties the weights to their clusters
before the first step and again after every optimizer step, so a layer never holds more than
``2^B`` distinct weight values. Biases are not shared (32-bit, as in the accounting).

Centroid update (one choice, made here): after each optimizer step every centroid becomes the
mean of its cluster's updated weights, and the weights are re-tied to it; the assignment of a
weight to its cluster is fixed after the k-means. With plain SGD at learning rate ``lr`` this is
exactly ``c_k <- c_k - lr * mean(gradients of the weights in cluster k)`` (Han et al. sum the
gradients instead; the mean keeps the step independent of the cluster's size). With Adam, which
:func:`models.detector.finetune.finetune` uses, each weight first moves by its own Adam step and
the centroid by the average of those steps. An empty cluster keeps its centroid.

Memory (:func:`quant.compress.accounting.shared_memory`): ``B`` bits of index per weight plus a
codebook of ``2^B`` 32-bit values per layer, plus 32-bit biases.

FINN: a codebook layer with arbitrary float centroids is NOT a layer of integer weights. FINN's
MVAU multiplies integer weights (one power-of-two/float scale per output channel) and has no
codebook lookup, so a shared model cannot go through the FINN build as it is, and its index +
codebook memory saving does not exist in an MVAU. :func:`snap_codebook_to_grid` rounds every
layer's centroids onto a ``bits``-wide (e.g. 8-bit) fixed-point grid with a power-of-two scale
per output channel: by default one common power of two for all channels of a layer, so the
layer keeps a single integer codebook with at most ``2^B`` distinct values; optionally each
channel its own (finer grid, but then ``<= 2^B`` distinct values per channel only). The snapped
model is exactly representable as ``bits``-bit integer weights times a per-channel power-of-two
scale (what :mod:`quant.recipes`' per-channel fixed-point weight quantizer and FINN's MVAU use),
and in an MVAU it costs ``weights * bits`` bits of weight memory. The BER cost of the snap is
what the ``fullycon-sharing`` experiment measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from qphy.errors import ConfigError
from quant.compress.masks import prunable_layers
from quant.trainer import Callback

#: Lloyd iterations of the k-means (stops earlier once the centroids no longer move).
KMEANS_ITERS = 50


@dataclass
class Codebook:
    """The shared weights of one layer.

    Attributes:
        centroids: ``2^B`` float values (float32), in cluster order (linear init keeps them
            sorted through k-means in practice; nothing relies on it).
        index: Cluster of each weight (int64, the weight's shape).
    """

    centroids: torch.Tensor
    index: torch.Tensor

    @property
    def bits(self) -> int:
        return int(self.centroids.numel()).bit_length() - 1

    def weight(self) -> torch.Tensor:
        """The tied weight tensor ``centroids[index]``."""
        return self.centroids[self.index]


def _check_bits(bits: int, what: str, lo: int = 1, hi: int = 16) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        raise ConfigError(f"{what} must be an integer in {lo}..{hi}, got {bits!r}")


def kmeans_1d(
    values: torch.Tensor, n_clusters: int, iters: int = KMEANS_ITERS
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means (Lloyd) with centroids initialised linearly over ``[min, max]``.

    Args:
        values: Any tensor; clustered flat, in float64 (the result is float32).
        n_clusters: Number of centroids.
        iters: Most Lloyd iterations.

    Returns:
        ``(centroids, index)``: ``n_clusters`` centroids and, per value (flat), its cluster.
    """
    v = values.detach().reshape(-1).to(torch.float64)
    centroids = torch.linspace(float(v.min()), float(v.max()), n_clusters, dtype=torch.float64)
    index = _nearest(v, centroids)
    for _ in range(iters):
        new = _cluster_means(v, index, centroids)
        index = _nearest(v, new)
        if torch.equal(new, centroids):
            break
        centroids = new
    centroids = _cluster_means(v, index, centroids)
    return centroids.to(torch.float32), index


def _nearest(v: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return torch.argmin((v[:, None] - centroids[None, :]).abs(), dim=1)


def _cluster_means(v: torch.Tensor, index: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Mean of each cluster's values; an empty cluster keeps its old centroid."""
    sums = torch.zeros_like(old).index_add_(0, index, v.to(old.dtype))
    counts = torch.bincount(index, minlength=old.numel()).to(old.dtype)
    return torch.where(counts > 0, sums / counts.clamp(min=1), old)


def share_weights(
    model: nn.Module, bits: int, layers: list[str] | None = None, iters: int = KMEANS_ITERS
) -> dict[str, Codebook]:
    """Clusters each layer's weights into ``2^bits`` centroids and ties them (in place).

    Args:
        model: A float model (its linear/conv layers are shared).
        bits: Index width B; each layer gets ``2^B`` centroids.
        layers: Layer names to share (default: every linear/conv layer).
        iters: Most Lloyd iterations per layer.

    Returns:
        One :class:`Codebook` per shared layer, by module name.

    Raises:
        ConfigError: ``bits`` outside 1..16, or a named layer is not a linear/conv layer.
    """
    _check_bits(bits, "weight-sharing index bits")
    all_layers = prunable_layers(model)
    names = list(all_layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in all_layers]
    if unknown:
        raise ConfigError(f"cannot share {unknown}: not linear/conv layers of the model")
    books: dict[str, Codebook] = {}
    for name in names:
        weight = all_layers[name].weight
        centroids, index = kmeans_1d(weight, 2**bits, iters)
        books[name] = Codebook(centroids, index.reshape(weight.shape))
    tie_weights(model, books)
    return books


def tie_weights(model: nn.Module, codebooks: Mapping[str, Codebook]) -> None:
    """Writes ``centroids[index]`` into each shared layer's weight (in place)."""
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, book in codebooks.items():
            weight = layers[name].weight
            if tuple(book.index.shape) != tuple(weight.shape):
                raise ConfigError(
                    f"codebook for '{name}' indexes shape {tuple(book.index.shape)}, "
                    f"weight is {tuple(weight.shape)}"
                )
            weight.copy_(book.weight().to(weight.dtype))


def update_centroids(model: nn.Module, codebooks: Mapping[str, Codebook]) -> None:
    """Sets every centroid to the mean of its cluster's current weights (in place)."""
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, book in codebooks.items():
            w = layers[name].weight.detach().reshape(-1).to(torch.float64)
            means = _cluster_means(w, book.index.reshape(-1), book.centroids.to(torch.float64))
            book.centroids = means.to(torch.float32)


class WeightSharing(Callback):
    """Keeps every shared layer tied to its codebook during :func:`quant.trainer.fit`.

    Before the first step the weights are tied; after every optimizer step the centroids are
    re-estimated as the means of their clusters' updated weights and the weights re-tied (see
    the module docstring for why that is the averaged-gradient update).

    Args:
        codebooks: As :func:`share_weights` returns them; updated in place.
    """

    def __init__(self, codebooks: Mapping[str, Codebook]):
        self.codebooks = dict(codebooks)

    def on_train_begin(self, model: nn.Module) -> None:
        tie_weights(model, self.codebooks)

    def after_step(self, model: nn.Module, step: int) -> None:
        update_centroids(model, self.codebooks)
        tie_weights(model, self.codebooks)


def distinct_values(model: nn.Module) -> dict[str, int]:
    """Number of distinct weight values of each linear/conv layer."""
    return {
        name: int(torch.unique(mod.weight.detach()).numel())
        for name, mod in prunable_layers(model).items()
    }


@dataclass(frozen=True)
class SnappedLayer:
    """One layer's weights on the fixed-point grid: ``weight == ints * scale[:, None]``.

    Attributes:
        ints: Integer weights (int64, the weight's shape, narrow range ``|i| <= 2^(bits-1)-1``).
        scale: One power of two per output channel (float32; all equal within a layer unless
            snapped ``per_channel``).
        bits: Integer width.
    """

    ints: torch.Tensor
    scale: torch.Tensor
    bits: int


def snap_codebook_to_grid(
    model: nn.Module, bits: int = 8, per_channel: bool = False
) -> dict[str, SnappedLayer]:
    """Rounds every layer's (shared) weights onto a ``bits``-bit power-of-two fixed-point grid.

    Each output channel ``j`` gets a scale ``s_j``, the smallest power of two with
    ``max|w| <= (2^(bits-1) - 1) * s_j``, and each weight becomes ``round(w / s_j) * s_j`` (in
    place; narrow range, so the integers are what quant.recipes' per-channel fixed-point
    weight quantizer and FINN's MVAU hold). The max is taken

    * ``per_channel=False`` (default) over the whole layer: every channel of a layer has the same
      scale, and since the rounding is then a function of the value alone, a layer with at most
      ``2^B`` distinct values keeps at most ``2^B`` (two centroids may merge): one integer
      codebook per layer survives. Costly when a few large weights set a coarse grid for all.
    * ``per_channel=True`` over each output channel: a finer grid for the channels with small
      weights, but a centroid may land on different values in channels with different scales,
      so only ``<= 2^B`` distinct values per CHANNEL are guaranteed, not per layer.

    Args:
        model: Usually a model after :func:`share_weights` (+ fine-tuning); any model works.
        bits: Integer width of the grid (signed, narrow range).
        per_channel: One scale per channel (see above) instead of one per layer.

    Returns:
        The integers and scales of every linear/conv layer, by module name.

    Raises:
        ConfigError: ``bits`` outside 2..16.
    """
    _check_bits(bits, "grid bits", lo=2)
    qmax = 2 ** (bits - 1) - 1
    out: dict[str, SnappedLayer] = {}
    with torch.no_grad():
        for name, mod in prunable_layers(model).items():
            w = mod.weight
            rows = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1)
            maxima = rows.tolist() if per_channel else [float(rows.max())] * len(rows)
            scale = torch.tensor([_pot_scale(m, qmax) for m in maxima], dtype=w.dtype)
            shape = (-1,) + (1,) * (w.dim() - 1)
            ints = torch.clamp(torch.round(w.detach() / scale.view(shape)), -qmax, qmax)
            w.copy_(ints * scale.view(shape))
            out[name] = SnappedLayer(ints=ints.to(torch.int64), scale=scale, bits=bits)
    return out


def _pot_scale(max_abs: float, qmax: int) -> float:
    """Smallest power of two ``s`` with ``max_abs <= qmax * s`` (1.0 for an all-zero layer)."""
    if max_abs == 0.0:
        return 1.0
    exp = int(torch.ceil(torch.log2(torch.tensor(max_abs / qmax, dtype=torch.float64))))
    # float log2 may be off by one near a power of two: settle on the smallest that fits.
    while max_abs > qmax * 2.0**exp:
        exp += 1
    while max_abs <= qmax * 2.0 ** (exp - 1):
        exp -= 1
    return 2.0**exp
