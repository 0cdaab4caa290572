"""Early supported-op checks: list EVERY node that would not become an RTL layer, at once.

Run after export/cleanup (QONNX level), after the HW-layer conversion and after specialization,
each before any long step. Violations raise one :class:`~qphy.errors.UnsupportedLayerError`
holding (node name, op_type, hint) for every offending node.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from qphy.errors import UnsupportedLayerError, UnsupportedNode

#: QONNX ops the streamline + HW conversion turns into MVAU/Thresholding layers (or absorbs).
QONNX_SUPPORTED = frozenset(
    {
        "Quant",
        "MatMul",
        "Gemm",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "Identity",
        "Flatten",
        "Reshape",
        "BipolarQuant",
        "Trunc",
        "Conv",
        "LeakyRelu",
        "Transpose",
        "BatchNormalization",
        # qphy's own RTL stream layers (hw/layers): forks, joins and pooling
        "Concat",
        "MaxPool",
        "GlobalAveragePool",
        "Split",
    }
)
#: HW layers qphy can stitch (each has an RTL variant in finn-rtllib).
HW_SUPPORTED = frozenset(
    {
        "MVAU",
        "Thresholding",
        "FMPadding",
        "ConvolutionInputGenerator",
        # qphy's own RTL stream layers (hw/layers)
        "DuplicateStreams",
        "ElementwiseAdd",
        "StreamingConcat",
        "StreamingSplit",
        "Pool",
        "GlobalAccPool",
    }
)
RTL_SUPPORTED = frozenset(
    {
        "MVAU_rtl",
        "Thresholding_rtl",
        "FMPadding_rtl",
        "ConvolutionInputGenerator_rtl",
        "StreamingFIFO_rtl",
        "StreamingDataWidthConverter_rtl",
        # qphy's own RTL stream layers (hw/layers)
        "DuplicateStreams_rtl",
        "AddStreams_rtl",
        "StreamingConcat_rtl",
        "StreamingSplit_rtl",
        "Pool_rtl",
        "GlobalAccPool_rtl",
    }
)
#: Pure re-orderings of a frame: at the graph's input or output they become host permutations.
LAYOUT_OPS = frozenset({"Transpose", "Flatten", "Reshape"})
#: Float ops that may stay on the host after the dataflow partition (the output scale/bias).
HOST_TAIL_OPS = frozenset({"Mul", "Add", "Sub", "Div"})
FPGADATAFLOW_DOMAIN = "finn.custom_op.fpgadataflow"

_POOL_HINT = (
    "no RTL layer for this pooling; qphy has max pooling (MaxPool1d/MaxPool2d) and the global "
    "average pool (nn.AdaptiveAvgPool2d(1)); use one of them or a strided conv"
)
_HINTS = {
    "Sigmoid": "no RTL layer; quantize the output with a QuantIdentity and apply the sigmoid on "
    "the host",
    "Tanh": "no RTL layer; use QuantHardTanh or a QuantReLU so it becomes thresholds",
    "Softmax": "no RTL layer; apply softmax on the host after the accelerator",
    "BatchNormalization": "must sit between a QuantConv/QuantLinear and an activation quantizer "
    "(QuantReLU/QuantIdentity) so it folds into the thresholds; or fold it into the layer",
    "LeakyRelu": "must be followed by an activation quantizer and have a power-of-two slope",
    "AveragePool": _POOL_HINT,
    "MaxPool": "not lowered to qphy's RTL pool: needs integer inputs, kernel >= stride and no "
    "padding (MaxPool1d/MaxPool2d(k) on a quantized activation)",
    "Concat": "only a channel concat (torch.cat(..., dim=1)) of quantized tensors with one "
    "shared scale becomes an RTL layer",
    "Split": "only a channel split of a quantized tensor becomes an RTL layer",
    "GlobalMaxPool": _POOL_HINT,
    "QuantAvgPool2d": _POOL_HINT,
    "Upsample": "no RTL up-sampling layer qphy can stitch (decoders stay on the host)",
    "Resize": "no RTL up-sampling layer qphy can stitch (decoders stay on the host)",
    "ConvTranspose": "no RTL transposed conv; decoders stay on the host",
}


def _hint(op_type: str, default: str) -> str:
    return _HINTS.get(op_type, default)


def _conv_problem(node) -> str | None:
    """Why a Conv cannot become SWG + MVAU (None if it can)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if int(attrs.get("group", 1)) != 1:
        return (
            "grouped/depthwise convs need the VVAU, which has no RTL variant qphy can stitch; "
            "use group=1"
        )
    if any(int(d) != 1 for d in attrs.get("dilations", [1])):
        return "dilated convs are not supported; use dilation 1"
    if len(attrs.get("kernel_shape", [0, 0])) not in (1, 2):
        return "only 1-D and 2-D convs are supported (QuantConv1d, QuantConv2d)"
    return None


def _leaky_problem(model: ModelWrapper, node) -> str | None:
    """Why a LeakyRelu cannot become thresholds (None if it can)."""
    from hw.transforms import is_power_of_two

    alpha = next((a.f for a in node.attribute if a.name == "alpha"), 0.01)
    if not is_power_of_two(alpha):
        return (
            f"LeakyReLU slope {alpha:g} is not a power of two, so its thresholds would not be "
            "exact; train with slope 2**-k (qphy's models use 1/4)"
        )
    consumers = model.find_consumers(node.output[0]) or []
    if len(consumers) != 1 or consumers[0].op_type != "Quant":
        return "must be followed by exactly one activation quantizer (QuantIdentity)"
    return None


def check_qonnx_supported(model: ModelWrapper) -> None:
    """After export: every op must lower to RTL, and the input must be quantized."""
    bad: list[UnsupportedNode] = []
    for node in model.graph.node:
        problem = None
        if node.op_type == "Conv":
            problem = _conv_problem(node)
        elif node.op_type == "LeakyRelu":
            problem = _leaky_problem(model, node)
        if problem is not None:
            bad.append(UnsupportedNode(node.name or "<unnamed>", node.op_type, problem))
        if node.op_type not in QONNX_SUPPORTED:
            bad.append(
                UnsupportedNode(
                    node.name or "<unnamed>",
                    node.op_type,
                    _hint(
                        node.op_type,
                        "no RTL layer for this op; supported: "
                        + ", ".join(sorted(QONNX_SUPPORTED)),
                    ),
                )
            )
    for node in model.graph.node:
        if node.op_type != "Quant":
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "rounding_mode"), "ROUND")
        if mode.upper() not in ("ROUND", "HALF_EVEN"):
            bad.append(
                UnsupportedNode(
                    node.name or "<unnamed>",
                    "Quant",
                    f"rounding_mode {mode}: thresholds implement ROUND (half to even) only",
                )
            )
    graph_in = model.graph.input[0].name
    consumers = model.find_consumers(graph_in) or []
    if not any(n.op_type == "Quant" for n in consumers):
        for n in consumers:
            if n.op_type in QONNX_SUPPORTED:
                bad.append(
                    UnsupportedNode(
                        n.name or "<unnamed>",
                        n.op_type,
                        "the graph input must go through a Quant node (an input quantizer, e.g. "
                        "QuantIdentity) so the host can send integers to the accelerator",
                    )
                )
    bad += _output_problems(model, {n.name for n in bad})
    if bad:
        raise UnsupportedLayerError(bad, stage="export")


def _output_problems(model: ModelWrapper, listed: set[str]) -> list[UnsupportedNode]:
    """The output must be quantized or a float tail after the last linear layer (see
    :func:`qphy.reference.float_tail`); an offender not listed yet is returned."""
    from qphy.reference import float_tail

    try:
        float_tail(model)
    except UnsupportedLayerError as exc:
        return [n for n in exc.nodes if n.name not in listed]
    return []


def host_tail(model: ModelWrapper) -> list:
    """Trailing float nodes (scalar/per-channel Mul/Add/... by a constant) kept on the host."""
    tail = []
    for node in reversed(list(model.graph.node)):
        if node.domain == FPGADATAFLOW_DOMAIN:
            break
        is_const = len(node.input) == 2 and model.get_initializer(node.input[1]) is not None
        if node.op_type in HOST_TAIL_OPS and is_const:
            tail.append(node)
        else:
            break
    return list(reversed(tail))


def boundary_layout_ops(model: ModelWrapper) -> list:
    """Layout ops (Transpose/Flatten/Reshape) before the first or after the last HW layer."""
    nodes = list(model.graph.node)
    hw = [k for k, n in enumerate(nodes) if n.domain == FPGADATAFLOW_DOMAIN]
    if not hw:
        return []
    outside = nodes[: hw[0]] + nodes[hw[-1] + 1 :]
    return [n for n in outside if n.op_type in LAYOUT_OPS]


def check_hw_supported(
    model: ModelWrapper, stage: str = "HW conversion", boundary_layout: bool = False
) -> None:
    """After HW conversion: every node is a HW layer (MVAU, Thresholding, FMPadding, SWG) or a
    host-side tail op; with ``boundary_layout``, also a layout op at the graph's input/output
    (moved to the host by the next step)."""
    allowed = {n.name for n in host_tail(model)}
    if boundary_layout:
        allowed |= {n.name for n in boundary_layout_ops(model)}
        # Scalar tail ops between output layout ops (they commute with the re-ordering).
        nodes = list(model.graph.node)
        hw = [k for k, n in enumerate(nodes) if n.domain == FPGADATAFLOW_DOMAIN]
        if hw:
            allowed |= {n.name for n in nodes[hw[-1] + 1 :] if n.op_type in HOST_TAIL_OPS}
    bad = []
    for node in model.graph.node:
        if node.name in allowed:
            continue
        if node.domain == FPGADATAFLOW_DOMAIN and node.op_type in HW_SUPPORTED:
            continue
        if node.domain == FPGADATAFLOW_DOMAIN:
            hint = "a HW layer without an RTL variant qphy can stitch (HLS needs finn-hlslib)"
        elif node.op_type == "MultiThreshold":
            hint = "thresholds on a float input; quantize the input of this layer"
        elif node.op_type in ("MatMul", "Gemm"):
            hint = "not converted to an MVAU: weights and inputs must be quantized integers"
        elif node.op_type in HOST_TAIL_OPS:
            hint = "a float op inside the datapath (only a final scale/bias can stay on the host)"
        elif node.op_type in LAYOUT_OPS:
            hint = (
                "a re-ordering inside the datapath; only one at the accelerator's input or "
                "output can move to the host"
            )
        elif node.op_type == "Im2Col":
            hint = "not converted to a sliding-window generator (check the conv's geometry)"
        else:
            hint = _hint(node.op_type, "no HW layer for this op")
        bad.append(UnsupportedNode(node.name, node.op_type, hint))
    if bad:
        raise UnsupportedLayerError(bad, stage=stage)


def check_rtl_specialized(model: ModelWrapper) -> None:
    """After SpecializeLayers: every node must be an RTL variant (no HLS: finn-hlslib is absent)."""
    bad = []
    for node in model.graph.node:
        if node.op_type in RTL_SUPPORTED:
            continue
        if node.op_type.startswith("MVAU"):
            hint = (
                "became HLS: MVAU_rtl needs signed weights and 2..8-bit inputs/weights that "
                "fit the part's DSP (check weight/activation widths)"
            )
        elif node.op_type.endswith("_hls"):
            hint = "HLS-only layer; finn-hlslib is not shipped, so no HLS layer can be built"
        else:
            hint = "not an RTL layer qphy can stitch"
        bad.append(UnsupportedNode(node.name, node.op_type, hint))
    if bad:
        raise UnsupportedLayerError(bad, stage="SpecializeLayers")
