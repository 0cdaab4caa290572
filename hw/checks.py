"""Early supported-op checks: list EVERY node that would not become an RTL layer, at once.

Run after export/cleanup (QONNX level), after the HW-layer conversion and after specialization,
each before any long step. Violations raise one :class:`~qphy.errors.UnsupportedLayerError`
holding (node name, op_type, hint) for every offending node.
"""

from __future__ import annotations

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
    }
)
#: HW layers qphy can stitch (each has an RTL variant in finn-rtllib).
HW_SUPPORTED = frozenset({"MVAU", "Thresholding"})
RTL_SUPPORTED = frozenset(
    {"MVAU_rtl", "Thresholding_rtl", "StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl"}
)
#: Float ops that may stay on the host after the dataflow partition (the output scale/bias).
HOST_TAIL_OPS = frozenset({"Mul", "Add", "Sub", "Div"})
FPGADATAFLOW_DOMAIN = "finn.custom_op.fpgadataflow"

_HINTS = {
    "Conv": "convolutions need the im2col (ConvolutionInputGenerator) path, not supported by qphy "
    "yet; use fully connected layers",
    "Sigmoid": "no RTL layer; quantize the output with a QuantIdentity and apply the sigmoid on "
    "the host",
    "Tanh": "no RTL layer; use QuantHardTanh or a QuantReLU so it becomes thresholds",
    "Softmax": "no RTL layer; apply softmax on the host after the accelerator",
    "BatchNormalization": "fold it into the preceding linear layer before export",
    "LeakyRelu": "no RTL layer; use ReLU or a quantized activation that becomes thresholds",
    "MaxPool": "pooling is not supported by qphy's RTL stitcher",
    "Concat": "branching graphs are not supported by qphy's linear RTL stitcher",
}


def _hint(op_type: str, default: str) -> str:
    return _HINTS.get(op_type, default)


def check_qonnx_supported(model: ModelWrapper) -> None:
    """After export: every op must lower to RTL, and the input must be quantized."""
    bad: list[UnsupportedNode] = []
    for node in model.graph.node:
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
    if bad:
        raise UnsupportedLayerError(bad, stage="export")


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


def check_hw_supported(model: ModelWrapper, stage: str = "HW conversion") -> None:
    """After HW conversion: every node is an MVAU/Thresholding layer, or a host-side tail op."""
    tail_names = {n.name for n in host_tail(model)}
    bad = []
    for node in model.graph.node:
        if node.name in tail_names:
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
