"""QONNX MLPs in the styles of other exporters, generated with onnx.helper (seeded).

One builder, :func:`mlp_graph`, covers the model classes of ``qphy build onnx``'s intake:
a float head before the input quantizer (normalisation, +-1 re-encoding, a Shape/Gather/
Unsqueeze/Concat/Reshape flatten chain), no input quantizer at all (QKeras/hls4ml style),
1- to 3-bit and bipolar types, BatchNorm after MatMul, quantized biases (tf2onnx MatMul + Add),
Transpose + MatMul weights, old FINN domains, opset 9-11, and host tails (Softmax, ArgMax).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

QONNX_DOMAIN = "qonnx.custom_op.general"


@dataclass(frozen=True)
class MlpStyle:
    """How the MLP is written.

    Attributes:
        dims: Layer widths, input first (the input is an image of ``image`` if given).
        w_bits: Weight bits (1 = bipolar weights).
        a_bits: Activation bits (1 = bipolar activations).
        in_quant: ``"int<B>"`` (signed B-bit input quantizer), ``"bipolar"``, or None (float
            input reaches the first MatMul).
        head: Float ops before the input quantizer: ``norm`` (Sub mean, Div std), ``pm1``
            (x * 2 - 1 of {0, 1} bits), or None.
        image: Input shape per vector before a flatten chain (None: a flat input).
        batchnorm: BatchNormalization after each hidden MatMul.
        bias: Quantized biases as MatMul + Add (tf2onnx).
        tail: ``softmax``, ``logsoftmax``, ``argmax`` or None after the last layer's output.
        out_quant: An 8-bit output quantizer after the last layer (else its float output).
        opset: The default-domain opset.
        transpose_weights: Weights stored (out, in) with a Transpose before the MatMul.
        quant_domain: Domain of the Quant nodes (``finn`` for old FINN exports).
        seed: Weights and BatchNorm parameters.
    """

    dims: tuple[int, ...]
    w_bits: int
    a_bits: int
    in_quant: str | None = "int8"
    head: str | None = None
    image: tuple[int, ...] | None = None
    batchnorm: bool = False
    bias: bool = False
    tail: str | None = None
    out_quant: bool = False
    opset: int = 13
    transpose_weights: bool = False
    quant_domain: str = QONNX_DOMAIN
    seed: int = 0
    extra: dict = field(default_factory=dict)


class _Graph:
    def __init__(self, style: MlpStyle) -> None:
        self.style = style
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(style.seed)

    def const(self, name: str, value, dtype=TensorProto.FLOAT) -> str:
        arr = np.asarray(value)
        self.inits.append(helper.make_tensor(name, dtype, arr.shape, arr.ravel().tolist()))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = f"{name}_out"
        domain = attrs.pop("domain", "")
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, domain=domain, **attrs))
        return out

    def quant(self, x: str, name: str, bits: int, scale: float, signed: bool, narrow=False):
        if bits == 1:
            s = self.const(f"{name}_scale", np.float32(scale))
            return self.node("BipolarQuant", [x, s], name, domain=self.style.quant_domain)
        ins = [
            self.const(f"{name}_scale", np.float32(scale)),
            self.const(f"{name}_zp", np.float32(0)),
            self.const(f"{name}_bits", np.float32(bits)),
        ]
        return self.node(
            "Quant",
            [x, *ins],
            name,
            domain=self.style.quant_domain,
            signed=int(signed),
            narrow=int(narrow),
            rounding_mode="ROUND",
        )

    def unsqueeze(self, x: str, name: str, axes: list[int]) -> str:
        if self.style.opset >= 13:
            return self.node(
                "Unsqueeze", [x, self.const(f"{name}_axes", axes, TensorProto.INT64)], name
            )
        return self.node("Unsqueeze", [x], name, axes=axes)


def _weights(g: _Graph, k: int, fan_in: int, fan_out: int) -> str:
    """A quantized weight tensor (fan_in, fan_out) as the MatMul's second operand."""
    s = g.style
    shape = (fan_out, fan_in) if s.transpose_weights else (fan_in, fan_out)
    if s.w_bits == 1:
        w = g.rng.choice([-1.0, 1.0], shape).astype(np.float32) * 0.3
        out = g.quant(g.const(f"W{k}", w), f"Wq{k}", 1, 1.0, True)
    else:
        hi = 2 ** (s.w_bits - 1) - 1  # narrow range, as Brevitas' default weight quantizer
        scale = 2.0**-3
        w = g.rng.integers(-hi, hi + 1, shape).astype(np.float32) * scale
        out = g.quant(g.const(f"W{k}", w), f"Wq{k}", s.w_bits, scale, True, narrow=True)
    if s.transpose_weights:
        out = g.node("Transpose", [out], f"Wt{k}", perm=[1, 0])
    return out


def _batchnorm(g: _Graph, x: str, k: int, n: int) -> str:
    acc_scale = 2.0 ** (-3)  # rough accumulator scale: keeps the activations in range
    params = [
        g.rng.uniform(0.5, 2.0, n) * acc_scale,
        g.rng.uniform(-0.5, 0.5, n),
        g.rng.uniform(-2, 2, n),
        g.rng.uniform(0.5, 4.0, n),
    ]
    names = [g.const(f"bn{k}_{p}", np.float32(v)) for p, v in zip("gbmv", params, strict=True)]
    return g.node("BatchNormalization", [x, *names], f"bn{k}", epsilon=1e-5)


def mlp_graph(path: Path, style: MlpStyle) -> Path:
    """Write the MLP of ``style`` to ``path`` (a QONNX file)."""
    g = _Graph(style)
    in_shape = [1, *style.image] if style.image else [1, style.dims[0]]
    x = "x"
    if style.image:  # x.view(x.size(0), -1) as older torch exporters write it
        shp = g.node("Shape", [x], "shape")
        n = g.node(
            "Gather", [shp, g.const("zero", np.int64(0), TensorProto.INT64)], "gather", axis=0
        )
        n = g.unsqueeze(n, "unsq", [0])
        minus = g.const("minus1", np.asarray([-1], np.int64), TensorProto.INT64)
        shape = g.node("Concat", [n, minus], "concat", axis=0)
        x = g.node("Reshape", [x, shape], "flatten")
    if style.head == "norm":
        x = g.node("Sub", [x, g.const("mean", np.float32(0.1307))], "norm_sub")
        x = g.node("Div", [x, g.const("std", np.float32(0.3081))], "norm_div")
    elif style.head == "pm1":
        x = g.node("Mul", [x, g.const("two", np.float32(2.0))], "pm1_mul")
        x = g.node("Add", [x, g.const("minus_one", np.float32(-1.0))], "pm1_add")
    if style.in_quant == "bipolar":
        x = g.quant(x, "QuantIn", 1, 1.0, True)
    elif style.in_quant is not None:
        bits = int(style.in_quant.removeprefix("int"))
        # +-1 codes: scale 1 (exact); else fixed<bits, 3> as hls4ml users declare it.
        scale = 1.0 if style.head == "pm1" else 2.0 ** -(bits - 3)
        x = g.quant(x, "QuantIn", bits, scale, True)
    n_layers = len(style.dims) - 1
    for k in range(n_layers):
        x = g.node("MatMul", [x, _weights(g, k, style.dims[k], style.dims[k + 1])], f"fc{k}")
        last = k == n_layers - 1
        if style.bias:
            b = g.rng.integers(-8, 8, style.dims[k + 1]).astype(np.float32) * 2.0**-4
            bq = g.quant(g.const(f"b{k}", b), f"bq{k}", 8, 2.0**-4, True)
            x = g.node("Add", [x, bq], f"bias{k}")
        if last:
            if style.out_quant:
                x = g.quant(x, "QuantOut", 8, 2.0**-2, True)
            break
        if style.batchnorm:
            x = _batchnorm(g, x, k, style.dims[k + 1])
        if style.a_bits == 1:
            x = g.quant(x, f"act{k}", 1, 1.0, True)
        else:
            x = g.node("Relu", [x], f"relu{k}")
            x = g.quant(x, f"act{k}", style.a_bits, 2.0**-1, False)
    if style.tail == "softmax":
        x = g.node("Softmax", [x], "softmax", axis=1 if style.opset < 13 else -1)
    elif style.tail == "logsoftmax":
        x = g.node("LogSoftmax", [x], "logsoftmax", axis=1)
    elif style.tail == "argmax":
        x = g.node("ArgMax", [x], "argmax", axis=1, keepdims=0)
    out_type = TensorProto.INT64 if style.tail == "argmax" else TensorProto.FLOAT
    out_shape = [1] if style.tail == "argmax" else [1, style.dims[-1]]
    g.nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        g.nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", style.opset),
            helper.make_opsetid(style.quant_domain, 1),
        ],
        ir_version=7 if style.opset < 13 else 8,
    )
    path.write_bytes(model.SerializeToString())
    return path


#: One small model per intake class (CI sizes: RTL builds of a few tens of seconds).
CI_STYLES: dict[str, MlpStyle] = {
    # Brevitas MNIST style: flatten chain, normalisation, BatchNorm, 2-bit weights/activations.
    "mnist_w2a2": MlpStyle(
        dims=(64, 32, 32, 10), w_bits=2, a_bits=2, head="norm", image=(1, 8, 8), batchnorm=True
    ),
    "bipolar_w1a1": MlpStyle(
        dims=(64, 32, 32, 10), w_bits=1, a_bits=1, in_quant="bipolar", head="norm", batchnorm=True
    ),
    # Also: a quantized output with a LogSoftmax after it (the tail inverted exactly).
    "mlp_w3a3_in8": MlpStyle(
        dims=(49, 32, 32, 12), w_bits=3, a_bits=3, out_quant=True, tail="logsoftmax"
    ),
    "pm1_input_w4a4": MlpStyle(dims=(32, 32, 10), w_bits=4, a_bits=4, in_quant="int2", head="pm1"),
    # QKeras through tf2onnx: float input, quantized weights and biases, softmax (opset 10).
    "qkeras_softmax": MlpStyle(
        dims=(16, 32, 5), w_bits=6, a_bits=6, in_quant=None, bias=True, tail="softmax", opset=10
    ),
    # Older Brevitas/FINN: opset 11, Transpose + MatMul weights, FINN domain, ArgMax tail.
    "opset11_transpose": MlpStyle(
        dims=(64, 32, 10),
        w_bits=4,
        a_bits=4,
        in_quant="int4",
        image=(1, 8, 8),
        transpose_weights=True,
        opset=11,
        quant_domain="finn.custom_op.general",
        tail="argmax",
    ),
}

#: The full-size models of docs/model-intake.md (manual: minutes per build).
FULL_STYLES: dict[str, MlpStyle] = {
    "mnist_w2a2": MlpStyle(
        dims=(784, 64, 64, 64, 10),
        w_bits=2,
        a_bits=2,
        head="norm",
        image=(1, 28, 28),
        batchnorm=True,
    ),
    "bipolar_w1a1": MlpStyle(
        dims=(784, 64, 64, 64, 10),
        w_bits=1,
        a_bits=1,
        in_quant="bipolar",
        head="norm",
        batchnorm=True,
    ),
    "mlp_w3a3_in8": MlpStyle(dims=(490, 256, 256, 256, 12), w_bits=3, a_bits=3),
    "pm1_input_w4a4": MlpStyle(
        dims=(128, 64, 64, 10), w_bits=4, a_bits=4, in_quant="int2", head="pm1"
    ),
    "qkeras_softmax": MlpStyle(
        dims=(16, 64, 32, 32, 5),
        w_bits=6,
        a_bits=6,
        in_quant=None,
        bias=True,
        tail="softmax",
        opset=10,
    ),
    "opset11_transpose": MlpStyle(
        dims=(784, 64, 10),
        w_bits=4,
        a_bits=4,
        in_quant="int4",
        image=(1, 28, 28),
        transpose_weights=True,
        opset=11,
        quant_domain="finn.custom_op.general",
        tail="argmax",
    ),
}


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.hw.intake_graphs STYLE OUT.onnx [--full]``: write one model."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("style", choices=sorted(CI_STYLES))
    p.add_argument("out", type=Path)
    p.add_argument("--full", action="store_true", help="the full-size model of the docs")
    args = p.parse_args(argv)
    mlp_graph(args.out, (FULL_STYLES if args.full else CI_STYLES)[args.style])


if __name__ == "__main__":
    main()
