"""qphy's own graph transformations (qonnx contract: ``apply(model) -> (model, changed)``)."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qphy.errors import UnsupportedLayerError, UnsupportedNode
from qphy.variants import int_range

#: Node attribute-free marker: names of MultiThreshold nodes already made half-even.
_DONE_META = "qphy_half_even_thresholds"


class RoundHalfEvenThresholds(Transformation):
    """Make MultiThreshold nodes round ties to even, as qonnx's Quant (ROUND) and torch.round do.

    FINN's ConvertQONNXtoFINN turns a quantizer into thresholds at the midpoints (k + 0.5) * s
    and MultiThreshold counts ``x >= t``: ties round half up. With power-of-two scales every
    value lies on a grid that contains those midpoints, so ties are frequent and the hardware
    would differ from the golden model by one LSB. For an integer input, a threshold that is an
    integer is such a tie; the tie must go up only if the upper output value is even, otherwise
    the threshold moves to t + 1 (``x >= t + 1`` is ``x > t`` on integers).

    Needs integer-typed MultiThreshold inputs (run after Streamline) and is applied once per
    node (tracked in the model's metadata).
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        raw = model.get_metadata_prop(_DONE_META) or ""
        done = set(filter(None, raw.split(",")))
        for node in model.graph.node:
            if node.op_type != "MultiThreshold" or node.name in done:
                continue
            if not model.get_tensor_datatype(node.input[0]).is_integer():
                continue
            thresholds = model.get_initializer(node.input[1])
            if thresholds is None:
                continue
            out_bias = int(round(getCustomOp(node).get_nodeattr("out_bias")))
            j = np.arange(thresholds.shape[-1])
            tie_goes_down = (j + 1 + out_bias) % 2 != 0
            is_tie = thresholds == np.round(thresholds)
            fixed = np.where(is_tie & tie_goes_down, thresholds + 1, thresholds)
            model.set_initializer(node.input[1], fixed.astype(thresholds.dtype))
            done.add(node.name)
        model.set_metadata_prop(_DONE_META, ",".join(sorted(done)))
        return model, False


def is_power_of_two(value: float) -> bool:
    """True for 2**k (k any integer, negative included), exactly representable in float32."""
    v = float(value)
    if not v > 0 or not np.isfinite(v):
        return False
    mantissa, _ = np.frexp(v)
    return mantissa == 0.5 and np.float32(v) == v


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def leaky_quant_thresholds(
    alpha: float, scale: np.ndarray, bits: int, signed: bool, narrow: bool
) -> tuple[np.ndarray, int]:
    """Thresholds (on the LeakyReLU's INPUT) and out_bias of ``Quant(LeakyRelu(x))``.

    The quantizer's level midpoints ``t = (k + 1/2) * scale`` are mapped through the inverse
    LeakyReLU (``t`` if ``t >= 0`` else ``t / alpha``): the LeakyReLU is strictly increasing, so
    ``LeakyRelu(x) >= t`` exactly when ``x >= t'``. With a power-of-two ``alpha`` the division
    is exact, so ties (``x`` exactly at a midpoint) stay ties and are fixed to half-even later
    by :class:`RoundHalfEvenThresholds`, as for any other quantizer.

    Returns thresholds of shape ``(channels or 1, n_levels - 1)`` and the out_bias (the lowest
    output level).
    """
    lo, hi = int_range(bits, signed, narrow)
    mid = np.arange(lo, hi, dtype=np.float64) + 0.5  # (hi - lo) midpoints
    s = np.asarray(scale, dtype=np.float64).reshape(-1, 1)
    t = mid[None, :] * s
    t = np.where(t >= 0, t, t / float(alpha))
    return t.astype(np.float32), lo


class LeakyReluQuantToThresholds(Transformation):
    """``LeakyRelu(alpha) -> Quant`` becomes ``MultiThreshold -> Mul(scale)`` (FINN dialect).

    FINN's ConvertQONNXtoFINN accepts only Relu (or affine ops) before an activation Quant; this
    runs before it. The thresholds are the quantizer's level midpoints mapped through the
    inverse LeakyReLU (see :func:`leaky_quant_thresholds`); the MultiThreshold's out_bias is the
    lowest level (negative for a signed quantizer) and the Mul restores the quantizer's scale,
    as FINN's own conversion of a ``Relu -> Quant`` does.

    Raises UnsupportedLayerError (listing every offender) for a LeakyReLU whose slope is not a
    power of two (the inverse would not be exact) or that is not followed by exactly one
    quantizer with constant scale, zero point 0 and bit width <= 8.
    """

    MAX_BITS = 8

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.transformation.infer_shapes import InferShapes

        bad: list[UnsupportedNode] = []
        changed = False
        if any(n.op_type == "LeakyRelu" for n in model.graph.node):
            model = model.transform(InferShapes())
        for leaky in [n for n in model.graph.node if n.op_type == "LeakyRelu"]:
            alpha = float(_attr(leaky, "alpha", 0.01))
            consumers = model.find_consumers(leaky.output[0]) or []
            quant = consumers[0] if len(consumers) == 1 else None
            problem = None
            if not is_power_of_two(alpha):
                problem = (
                    f"LeakyReLU slope {alpha} is not a power of two: the thresholds would not be "
                    "exact; train with slope 2**-k (qphy's models use 1/4)"
                )
            elif quant is None or quant.op_type != "Quant":
                problem = (
                    "a LeakyReLU must be followed by exactly one activation quantizer "
                    "(QuantIdentity) so it becomes thresholds"
                )
            if problem is None:
                scale, zeropt, bits = (model.get_initializer(quant.input[i]) for i in (1, 2, 3))
                if scale is None or zeropt is None or bits is None or np.any(zeropt != 0):
                    problem = "its quantizer needs a constant scale/bit width and zero point 0"
                elif int(np.asarray(bits).item()) > self.MAX_BITS:
                    problem = f"its quantizer is wider than {self.MAX_BITS} bits"
                elif np.any(np.asarray(scale) <= 0):
                    problem = "its quantizer has a non-positive scale"
            if problem is not None:
                bad.append(UnsupportedNode(leaky.name or "<unnamed>", "LeakyRelu", problem))
                continue
            self._replace(model, leaky, quant, alpha, scale, int(np.asarray(bits).item()))
            changed = True
        if bad:
            raise UnsupportedLayerError(bad, stage="LeakyReLU to thresholds")
        return model, changed

    @staticmethod
    def _replace(model, leaky, quant, alpha, scale, bits) -> None:
        signed = bool(_attr(quant, "signed", 1))
        narrow = bool(_attr(quant, "narrow", 0))
        mode = _attr(quant, "rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode.upper() not in ("ROUND", "HALF_EVEN"):
            raise UnsupportedLayerError(
                [UnsupportedNode(quant.name, "Quant", f"rounding_mode {mode}: ROUND only")],
                stage="LeakyReLU to thresholds",
            )
        scale = np.asarray(scale, dtype=np.float32)
        thresholds, out_bias = leaky_quant_thresholds(alpha, scale, bits, signed, narrow)
        shape = model.get_tensor_shape(leaky.input[0])
        layout = {2: "NC", 3: "NCW", 4: "NCHW"}.get(len(shape), "NC")
        thr_name = model.make_new_valueinfo_name()
        model.set_initializer(thr_name, thresholds)
        mt_out = model.make_new_valueinfo_name()
        model.set_tensor_shape(mt_out, shape)
        out_dt = f"{'INT' if signed else 'UINT'}{bits}"
        mt = helper.make_node(
            "MultiThreshold",
            [leaky.input[0], thr_name],
            [mt_out],
            domain="qonnx.custom_op.general",
            name=f"{leaky.name}_thresholds",
            out_dtype=out_dt,
            out_scale=1.0,
            out_bias=float(out_bias),
            data_layout=layout,
        )
        if scale.size > 1:  # per-channel: broadcast along the channel axis
            scale = scale.reshape([1, -1] + [1] * (len(shape) - 2))
        scale_name = model.make_new_valueinfo_name()
        model.set_initializer(scale_name, scale.astype(np.float32))
        mul = helper.make_node(
            "Mul", [mt_out, scale_name], [quant.output[0]], name=f"{leaky.name}_scale"
        )
        idx = list(model.graph.node).index(leaky)
        model.graph.node.remove(leaky)
        model.graph.node.remove(quant)
        model.graph.node.insert(idx, mul)
        model.graph.node.insert(idx, mt)
        model.set_tensor_datatype(mt_out, DataType[out_dt])


class FoldConvBiasQuant(Transformation):
    """Replace a Conv's constant bias quantizer by the float bias it computes.

    qonnx's ExtractBiasFromConv (inside ConvertQONNXtoFINN) cannot reshape a bias Quant whose
    zero point is a 0-d scalar, as Brevitas exports it. The folded value is the float32 the
    golden model computes (an integer times a power-of-two scale), and streamlining moves it
    into the next thresholds as before.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.custom_op.general.quant import quant

        changed = False
        for conv in [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2]:
            producer = model.find_producer(conv.input[2])
            if producer is None or producer.op_type != "Quant":
                continue
            params = [model.get_initializer(i) for i in producer.input]
            if any(p is None for p in params):
                continue
            value = quant(
                *params,
                signed=int(_attr(producer, "signed", 1)),
                narrow=int(_attr(producer, "narrow", 0)),
                rounding_mode=str(_attr(producer, "rounding_mode", b"ROUND").decode()),
            )
            model.graph.node.remove(producer)
            model.set_initializer(conv.input[2], np.asarray(value, dtype=np.float32))
            changed = True
        return model, changed
