"""Accounting of a (compressed) model: weights, non-zeros, memory bits and FLOPs per frame.

Conventions (stated once, used by every experiment):

* **weights**: entries of the linear/conv weight tensors; biases are counted apart and never
  pruned. A QAT layer's non-zeros are those of its quantized integer weights (a small float
  weight that rounds to 0 is a zero in hardware too).
* **FLOPs per frame** (one input vector): every add and every multiply is one FLOP; activations
  (ReLU, quantizers) are not counted. A dense linear layer ``in -> out`` costs ``out * (in
  multiplies + (in - 1) adds + 1 bias add) = 2 * in * out``; sparse, a row with ``nz`` non-zero
  weights costs ``2 * nz`` (zeros are skipped), so a layer costs ``2 * nnz``. A conv layer is
  counted per output position (its weight as an ``out x (in * kh * kw)`` matrix).
* **memory bits**, per layer, the smaller of two formats:
  dense ``weights * value_bits``; or CSR over the output rows: ``nnz * (value_bits +
  ceil(log2(fan_in)))`` (value plus column index) ``+ (rows + 1) * ceil(log2(nnz + 1))`` (row
  pointers). Biases add ``biases * bias_bits`` either way. Float models use 32-bit values; a
  QAT model its weight width, and 32-bit biases (as quant.recipes' Int32Bias).
* **shared (codebook) memory**, :func:`shared_memory`: per layer ``weights * B`` bits of
  cluster index, a codebook of ``2^B`` values of ``codebook_bits`` (32 for float centroids),
  and 32-bit biases (weight sharing, :mod:`quant.compress.sharing`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from quant.compress.masks import prunable_layers

#: Bits of a float32 value.
FLOAT_BITS = 32
#: Bits of a bias (float32, or Int32Bias in QAT).
BIAS_BITS = 32


def index_bits(n: int) -> int:
    """Bits to address ``n`` positions (at least 1)."""
    return max(1, math.ceil(math.log2(max(n, 1))))


@dataclass(frozen=True)
class LayerAccount:
    """The numbers of one layer (see the module docstring for the conventions)."""

    name: str
    fan_in: int
    fan_out: int
    weights: int
    nonzero: int
    biases: int
    value_bits: int
    dense_bits: int
    csr_bits: int
    flops_dense: int
    flops_sparse: int

    @property
    def memory_bits(self) -> int:
        return min(self.dense_bits, self.csr_bits) + self.biases * BIAS_BITS


@dataclass(frozen=True)
class Account:
    """Totals over a model's prunable layers, plus the layers themselves."""

    layers: tuple[LayerAccount, ...]

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def nonzero(self) -> int:
        return sum(layer.nonzero for layer in self.layers)

    @property
    def pruned_fraction(self) -> float:
        return 0.0 if self.weights == 0 else 1.0 - self.nonzero / self.weights

    @property
    def biases(self) -> int:
        return sum(layer.biases for layer in self.layers)

    @property
    def memory_bits(self) -> int:
        """Each layer in its smaller format (dense or CSR), biases included."""
        return sum(layer.memory_bits for layer in self.layers)

    @property
    def dense_memory_bits(self) -> int:
        return sum(layer.dense_bits + layer.biases * BIAS_BITS for layer in self.layers)

    @property
    def flops_dense(self) -> int:
        return sum(layer.flops_dense for layer in self.layers)

    @property
    def flops(self) -> int:
        """FLOPs per frame with zeros skipped."""
        return sum(layer.flops_sparse for layer in self.layers)

    def to_json(self) -> dict:
        return {
            "weights": self.weights,
            "nonzero_weights": self.nonzero,
            "pruned_fraction": self.pruned_fraction,
            "biases": self.biases,
            "memory_bits": self.memory_bits,
            "dense_memory_bits": self.dense_memory_bits,
            "flops_per_frame": self.flops,
            "dense_flops_per_frame": self.flops_dense,
            "memory_format": "per layer min(dense, CSR: value + ceil(log2(fan_in))-bit column "
            "index per non-zero, (rows+1) ceil(log2(nnz+1))-bit row pointers) + 32-bit biases",
            "layers": [
                {**asdict(layer), "memory_bits": layer.memory_bits} for layer in self.layers
            ],
        }


def _int_weight(layer: nn.Module) -> tuple[torch.Tensor, int]:
    """The weight as the hardware sees it (quantized integers for Brevitas layers) and its
    value width in bits."""
    if hasattr(layer, "quant_weight") and getattr(layer, "weight_quant", None) is not None:
        qw = layer.quant_weight()
        bits = getattr(qw, "bit_width", None)
        if bits is not None and qw.scale is not None:
            ints = torch.round(qw.value / qw.scale).detach()
            return ints, int(bits)
    return layer.weight.detach(), FLOAT_BITS


def layer_account(name: str, layer: nn.Module, value_bits: int | None = None) -> LayerAccount:
    """The numbers of one linear/conv layer; ``value_bits`` overrides the weight width."""
    with torch.no_grad():
        w, bits = _int_weight(layer)
    bits = value_bits if value_bits is not None else bits
    rows = int(w.shape[0])
    mat = w.reshape(rows, -1)
    fan_in = int(mat.shape[1])
    per_row = (mat != 0).sum(dim=1)
    nnz = int(per_row.sum())
    n_bias = rows if getattr(layer, "bias", None) is not None else 0
    return LayerAccount(
        name=name,
        fan_in=fan_in,
        fan_out=rows,
        weights=int(mat.numel()),
        nonzero=nnz,
        biases=n_bias,
        value_bits=bits,
        dense_bits=int(mat.numel()) * bits,
        csr_bits=nnz * (bits + index_bits(fan_in)) + (rows + 1) * index_bits(nnz + 1),
        flops_dense=2 * rows * fan_in,
        flops_sparse=2 * nnz,
    )


def account(model: nn.Module, value_bits: int | None = None) -> Account:
    """Accounting over every prunable (linear/conv) layer of ``model``.

    Args:
        model: Float or Brevitas QAT model.
        value_bits: Weight width to assume; default 32 for float layers, the quantizer's width
            for QAT layers.
    """
    return Account(
        tuple(layer_account(name, mod, value_bits) for name, mod in prunable_layers(model).items())
    )


@dataclass(frozen=True)
class SharedLayerMemory:
    """Memory of one weight-shared layer (see the module docstring)."""

    name: str
    weights: int
    biases: int
    index_bits: int
    codebook_entries: int
    codebook_bits: int

    @property
    def memory_bits(self) -> int:
        return (
            self.weights * self.index_bits
            + self.codebook_entries * self.codebook_bits
            + self.biases * BIAS_BITS
        )


@dataclass(frozen=True)
class SharedMemory:
    """Index + codebook + bias memory of a weight-shared model."""

    layers: tuple[SharedLayerMemory, ...]

    @property
    def memory_bits(self) -> int:
        return sum(layer.memory_bits for layer in self.layers)

    def to_json(self) -> dict:
        return {
            "memory_bits": self.memory_bits,
            "memory_format": "per layer: B-bit index per weight + 2^B codebook values + 32-bit "
            "biases",
            "layers": [
                {**asdict(layer), "memory_bits": layer.memory_bits} for layer in self.layers
            ],
        }


def shared_memory(
    model: nn.Module, index_bits: int, codebook_bits: int = FLOAT_BITS
) -> SharedMemory:
    """Memory of ``model`` stored as weight sharing with ``2^index_bits`` values per layer.

    Args:
        model: Any model; every linear/conv layer is counted as shared.
        index_bits: Cluster index width B.
        codebook_bits: Width of one codebook value (32: float centroids).
    """
    return SharedMemory(
        tuple(
            SharedLayerMemory(
                name=name,
                weights=int(mod.weight.numel()),
                biases=int(mod.weight.shape[0]) if getattr(mod, "bias", None) is not None else 0,
                index_bits=index_bits,
                codebook_entries=2**index_bits,
                codebook_bits=codebook_bits,
            )
            for name, mod in prunable_layers(model).items()
        )
    )
