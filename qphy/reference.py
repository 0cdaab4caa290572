"""The QONNX reference: batched execution and golden vectors (torch-free; qonnx, not finn).

Golden outputs always come from qonnx's executor on the QONNX model, executed as one batch: the
model is copied with its batch dimension set to the number of vectors. Used by the export stage
(quant/ checks Brevitas against it; user QONNX files get their golden vectors here) and by the
flow, which extends an export's golden set to the number of vectors a run asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from qphy.defaults import SATURATE_SCALE
from qphy.errors import MalformedModelError
from qphy.qonnx_io import load_model

MODEL_FILE = "model.qonnx.onnx"
GOLDEN_IN = "golden_in.npy"
GOLDEN_OUT = "golden_out.npy"
EXPORT_REPORT = "export_report.json"


def batched_model(model: ModelWrapper, n: int) -> ModelWrapper:
    """A copy of the batch-1 graph with batch n (value_info dropped and re-inferred)."""
    m = ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))
    for vi in list(m.graph.input[:1]) + list(m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = n
    del m.graph.value_info[:]
    from qphy.intake import batch_reshapes, fold_shapes  # noqa: PLC0415

    # Flatten chains (Shape/Gather/.../Reshape) folded at batch 1 reshape to (1, ...): per
    # vector, that leading 1 is the batch; still dynamic ones fold at this batch size.
    return fold_shapes(batch_reshapes(m, n).transform(InferShapes()))


#: Vectors per qonnx execution. The executor keeps every tensor of the batch (float32, and
#: float64 inside the Quant op), so one batch of a million detector vectors needed more than
#: the 24 GB of this machine (OOM-killed); chunks bound it to the chunk's tensors.
EXEC_CHUNK = 10_000


def chunks(n: int, size: int | None = None):
    """Consecutive slices covering ``range(n)``, each at most ``size`` (:data:`EXEC_CHUNK`)."""
    size = size or EXEC_CHUNK
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def execute_batch(
    model: ModelWrapper, inputs: np.ndarray, full_context: bool = False, chunk: int | None = None
):
    """qonnx's executor on a batch: the output array, or every tensor by name.

    Without ``full_context`` the vectors run in chunks of ``chunk`` (the outputs concatenated
    in order); a full context is one execution of all ``inputs``, so its callers chunk
    themselves (:func:`chunks`).
    """
    n, chunk = int(inputs.shape[0]), chunk or EXEC_CHUNK
    if not full_context and n > chunk:
        models: dict[int, ModelWrapper] = {}
        outs = []
        for sl in chunks(n, chunk):
            size = sl.stop - sl.start
            if size not in models:
                models[size] = batched_model(model, size)
            outs.append(_execute(models[size], inputs[sl], False))
        return np.concatenate(outs)
    return _execute(batched_model(model, n), inputs, full_context)


def _execute(m: ModelWrapper, inputs: np.ndarray, full_context: bool):
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    ctx = execute_onnx(m, {iname: inputs.astype(np.float32)}, return_full_exec_context=full_context)
    return ctx if full_context else np.asarray(ctx[oname])


@dataclass(frozen=True)
class GoldenSet:
    """Float inputs/outputs of the reference model and where they came from.

    ``inputs`` keep the model's input shape per vector (``(n, 2, 32, 32)`` for a CSI encoder,
    ``(n, features)`` for the detector); ``outputs`` are flattened per vector ``(n, M)``.
    """

    model_path: Path
    inputs: np.ndarray
    outputs: np.ndarray
    variant: str


def random_inputs(
    shape: tuple[int, ...], n: int, seed: int, saturate_scale: float = SATURATE_SCALE
) -> np.ndarray:
    """Seeded Gaussian inputs; every second vector is scaled up far enough to saturate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    x[1::2] *= np.float32(saturate_scale)
    return x


def load_reference(path: Path) -> ModelWrapper:
    """The QONNX model, cleaned up, for golden execution."""
    return cleanup_model(load_model(path))


def read_export(export_dir: Path) -> GoldenSet:
    """Read an export directory (model.qonnx.onnx, golden_in/out.npy, export_report.json)."""
    export_dir = Path(export_dir)
    need = [MODEL_FILE, GOLDEN_IN, GOLDEN_OUT]
    missing = [f for f in need if not (export_dir / f).is_file()]
    if missing:
        raise MalformedModelError(f"export directory {export_dir} lacks {missing}")
    try:
        x = np.load(export_dir / GOLDEN_IN)
        y = np.load(export_dir / GOLDEN_OUT)
    except (OSError, ValueError) as exc:
        raise MalformedModelError(f"unreadable golden files in {export_dir}: {exc}") from exc
    if x.ndim < 2 or y.ndim < 2 or len(x) != len(y) or len(x) == 0:
        raise MalformedModelError(
            f"golden_in {x.shape} / golden_out {y.shape} are not matching (n, ...) arrays"
        )
    y = y.reshape(len(y), -1)  # outputs are compared per vector, flattened
    variant = "unknown"
    report = export_dir / EXPORT_REPORT
    if report.is_file():
        variant = json.loads(report.read_text()).get("variant", variant)
    return GoldenSet(export_dir / MODEL_FILE, x.astype(np.float32), y.astype(np.float32), variant)


def extend(
    golden: GoldenSet, n: int, seed: int, saturate_scale: float = SATURATE_SCALE
) -> GoldenSet:
    """At least n vectors: the exported ones first, then seeded extra ones run through qonnx."""
    have = len(golden.inputs)
    if have >= n:
        return GoldenSet(golden.model_path, golden.inputs[:n], golden.outputs[:n], golden.variant)
    model = load_reference(golden.model_path)
    extra = random_inputs(golden.inputs.shape[1:], n - have, seed, saturate_scale)
    extra_out = execute_batch(model, extra)
    return GoldenSet(
        golden.model_path,
        np.concatenate([golden.inputs, extra]),
        np.concatenate([golden.outputs, extra_out.reshape(len(extra), -1)]),
        golden.variant,
    )


# --- The accelerator's integers of a model whose output is a float tail ---------------------

#: Ops that only re-order a frame (applied to the integers as they are to the floats).
_LAYOUT_OPS = frozenset({"Transpose", "Flatten", "Reshape"})
#: Elementwise ops with a constant that form the host's float tail (scale, bias).
_TAIL_OPS = frozenset({"Mul", "Add", "Sub", "Div"})
#: The linear ops whose integer accumulator the accelerator outputs when no quantizer follows.
_LINEAR_OPS = frozenset({"Gemm", "MatMul", "Conv"})
#: Ops between a quantizer and a linear op that keep the quantizer's integers and scale.
_SCALE_PRESERVING = frozenset({"Transpose", "Flatten", "Reshape", "Identity", "MaxPool"})

_OUTPUT_HINT = (
    "the model's output must come from an activation quantizer (QuantIdentity/QuantReLU) or be "
    "the float output of the last QuantLinear/QuantConv (its scale and bias then run on the host);"
    " add a QuantIdentity after this node or move it to your own post-processing"
)


@dataclass(frozen=True)
class FloatTail:
    """Where the reference's float output tail starts: the last linear layer and the nodes from
    it to the graph output (layout ops and constant scale/bias ops)."""

    linear: object  # the onnx NodeProto of the last Gemm/MatMul/Conv
    path: tuple  # nodes after it, in graph order

    @property
    def description(self) -> str:
        ops = "".join(f" -> {n.op_type}" for n in self.path)
        return f"{self.linear.name} ({self.linear.op_type}){ops}"


def _const_operand(model: ModelWrapper, node) -> int | None:
    """Index of the data input of a binary op whose other input is constant (else None)."""
    if len(node.input) != 2:
        return None
    consts = [_is_constant(model, t) for t in node.input]
    if consts == [False, True]:
        return 0
    if consts == [True, False] and node.op_type in ("Mul", "Add"):
        return 1
    return None


def _is_constant(model: ModelWrapper, name: str) -> bool:
    """An initializer, or a Quant of initializers (a quantized constant such as a bias)."""
    if model.get_initializer(name) is not None:
        return True
    prod = model.find_producer(name)
    return (
        prod is not None
        and prod.op_type == "Quant"
        and all(model.get_initializer(i) is not None for i in prod.input)
    )


def float_tail(model: ModelWrapper) -> FloatTail | None:
    """The float output tail of a reference model, or None if its output is quantized.

    Walks back from the graph output over layout ops and constant scale/bias ops. An activation
    ``Quant`` there means the output is integers times a scale (the host inverts the tail
    exactly); a Gemm/MatMul/Conv means the accelerator outputs that layer's integer
    accumulator and the host computes the float tail. Anything else cannot be split so and is
    an UnsupportedLayerError naming the node.
    """
    from qphy.errors import UnsupportedLayerError, UnsupportedNode  # noqa: PLC0415
    from qphy.intake import walk_post  # noqa: PLC0415

    path = []
    _, name = walk_post(model)  # Softmax/ArgMax/... after the integers run on the host
    while True:
        node = model.find_producer(name)
        if node is None:
            return None  # the output is the graph input (nothing to split)
        if node.op_type in ("Quant", "BipolarQuant") and not _is_constant(model, node.output[0]):
            return None
        if node.op_type in _LINEAR_OPS:
            return FloatTail(node, tuple(reversed(path)))
        data = 0 if node.op_type in _LAYOUT_OPS else None
        if node.op_type in _TAIL_OPS:
            data = _const_operand(model, node)
        if data is None:
            raise UnsupportedLayerError(
                [UnsupportedNode(node.name or "<unnamed>", node.op_type, _OUTPUT_HINT)],
                stage="export (output tail)",
            )
        path.append(node)
        name = node.input[data]


def _quant_integers(model: ModelWrapper, ctx: dict, tensor: str, what: str) -> np.ndarray:
    """The integers of a quantized tensor: its value / its quantizer's scale, checked exact.

    Walks back from ``tensor`` to the Quant producing it (over ops that keep integers and
    scale). The integers are rounded quotients; they must give back the tensor bit for bit as
    qonnx's Quant computes it (``int * scale`` in float32), else MalformedModelError.
    """
    ints, _ = _quant_integers_scale(model, ctx, tensor, what)
    return ints


def _join_integers(model: ModelWrapper, ctx: dict, node, what: str) -> tuple[np.ndarray, Any]:
    """A skip add or a channel concat of quantized tensors: integers of one shared scale (the
    accelerator adds/concatenates integers), each part checked exact against its quantizer."""
    parts = [_quant_integers_scale(model, ctx, t, what) for t in node.input]
    scales = [np.asarray(s, dtype=np.float32) for _, s in parts]
    if any(s.shape != scales[0].shape or np.any(s != scales[0]) for s in scales[1:]):
        raise MalformedModelError(
            f"{what}: the inputs of {node.name} ({node.op_type}) have different quantizer "
            "scales; quantize both with the same QuantIdentity/QuantReLU so the hardware can "
            "join their integers"
        )
    if node.op_type == "Add":
        return sum(i for i, _ in parts), scales[0]
    axis = int(_attrs(node).get("axis", 1))
    return np.concatenate([i for i, _ in parts], axis=axis), scales[0]


def _quant_integers_scale(
    model: ModelWrapper, ctx: dict, tensor: str, what: str
) -> tuple[np.ndarray, Any]:
    """(integers, scale) of a quantized tensor (see :func:`_quant_integers`)."""
    name, hops, reshapes_only = tensor, 0, True
    scale = None
    while True:
        node = model.find_producer(name)
        if (
            node is not None
            and node.op_type in ("Add", "Concat")
            and len(node.input) >= 2
            and not any(_is_constant(model, t) for t in node.input)
        ):
            ints, scale = _join_integers(model, ctx, node, what)
            if reshapes_only:  # the join's integers, flattened as the model does
                return ints.reshape(np.asarray(ctx[tensor]).shape), scale
            node = None  # e.g. a pool after the join: integers from the value, checked below
            break
        if node is None or node.op_type not in _SCALE_PRESERVING | {"Quant", "BipolarQuant"}:
            raise MalformedModelError(
                f"{what} ({tensor}) is not produced by a quantizer "
                f"({node.op_type if node else 'graph input'}): quantize it (QuantIdentity, "
                "QuantReLU, or a weight quantizer) so the accelerator sees integers"
            )
        if node.op_type in ("Quant", "BipolarQuant"):
            break
        reshapes_only &= node.op_type in ("Flatten", "Reshape", "Identity")
        name, hops = node.input[0], hops + 1
    label = node.name if node is not None else name
    if node is not None:
        scale = np.asarray(ctx[node.input[1]], dtype=np.float32)
        bipolar = node.op_type == "BipolarQuant"  # +-1 times the scale: no zero point
        zeropt = np.zeros(1, np.float32) if bipolar else np.asarray(ctx[node.input[2]], np.float32)
        if np.any(zeropt != 0):
            raise MalformedModelError(f"{what}: quantizer {node.name} has a non-zero zero point")
    if scale.size != 1 and hops:
        raise MalformedModelError(
            f"{what}: per-channel scale of {label} before a re-ordering; use a per-tensor "
            "activation quantizer"
        )
    value = np.asarray(ctx[tensor], dtype=np.float32)
    ints = np.round(value.astype(np.float64) / scale.astype(np.float64))
    if not np.array_equal((ints.astype(np.float32) * scale).astype(np.float32), value):
        bad = tuple(int(i) for i in np.argwhere(ints.astype(np.float32) * scale != value)[0])
        raise MalformedModelError(
            f"{what}: value at {bad} is not an integer times the scale of {label}"
        )
    return ints.astype(np.int64), scale


def _attrs(node) -> dict:
    from onnx import helper  # noqa: PLC0415

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _int_conv(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Exact integer N-d convolution (N = 1 or 2), ONNX Conv semantics without bias."""
    nd = w.ndim - 2
    if nd == 1:  # as 2-D with a 1-high dimension
        attrs = {
            "strides": [1, *attrs.get("strides", [1])],
            "dilations": [1, *attrs.get("dilations", [1])],
            "pads": [0, attrs.get("pads", [0, 0])[0], 0, attrs.get("pads", [0, 0])[1]],
            "group": attrs.get("group", 1),
        }
        return _int_conv(x[:, :, None, :], w[:, :, None, :], attrs)[:, :, 0, :]
    if nd != 2 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise MalformedModelError(f"integer reference conv: {nd}-D / auto_pad not supported")
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    group = int(attrs.get("group", 1))
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow), dtype=np.int64)
    mg = m // group
    for g in range(group):
        xs = x[:, g * cg : (g + 1) * cg]
        ws = w[g * mg : (g + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh : i * dh + sh * oh : sh, j * dw : j * dw + sw * ow : sw]
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    return out


def _linear_integers(model: ModelWrapper, ctx: dict, node) -> np.ndarray:
    """The integer accumulator of a Gemm/MatMul/Conv (without bias, alpha or beta)."""
    a = _quant_integers(model, ctx, node.input[0], f"input of {node.name}")
    w = _quant_integers(model, ctx, node.input[1], f"weights of {node.name}")
    attrs = _attrs(node)
    if node.op_type == "Conv":
        return _int_conv(a, w, attrs)
    if node.op_type == "Gemm":
        a = a.T if attrs.get("transA", 0) else a
        w = w.T if attrs.get("transB", 0) else w
    return a @ w


def accelerator_integers(model: ModelWrapper, tail: FloatTail, inputs: np.ndarray) -> np.ndarray:
    """The integers an accelerator ending in ``tail.linear`` must output, model order ``(n, M)``.

    qonnx executes the reference model on ``inputs``; the last linear layer's input and weights
    are taken as the integers of their quantizers (each checked to reproduce its float tensor
    bit for bit), multiplied exactly in int64, and re-ordered by the layout ops on the way to
    the output. Nothing is derived from the float outputs, so a wrong integer cannot hide in
    float rounding.
    """
    parts = []
    for sl in chunks(len(inputs)):  # a full context of every vector at once does not fit
        ctx = execute_batch(model, inputs[sl], full_context=True)
        ints = _linear_integers(model, ctx, tail.linear)
        for node in tail.path:
            if node.op_type == "Transpose":
                ints = np.transpose(ints, _attrs(node).get("perm"))
            elif node.op_type in _LAYOUT_OPS:
                ints = ints.reshape(np.asarray(ctx[node.output[0]]).shape)
        parts.append(ints.reshape(sl.stop - sl.start, -1))
    return np.concatenate(parts)
