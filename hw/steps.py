"""The hw build steps: plain functions ``step_<verb>_<object>(model, cfg) -> model``.

:data:`STEPS` maps names to functions in pipeline order; :data:`PRESETS` are lists of names.
Each step is a handful of FINN/qonnx transformations; none reads anything but its arguments.
Steps that need to leave side products (the dataflow partition's parent, the RTL export) write
them under ``cfg.build_dir``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from hw.checks import check_hw_supported, check_qonnx_supported, check_rtl_specialized, host_tail
from hw.config import FifoSizing, FoldingPreference, HwBuildConfig, Preset
from hw.dynamic_matmul import drop_weight_reshapes, dynamic_matmul_form
from hw.folding import fold_for_latency
from hw.legalize import BipolarToInt2, PreferRtl, SplitHostHead, SplitHostPost
from hw.steps_graph import (
    convert_graph_layers,
    fold_graph_layers,
    insert_forks,
    specialize_graph_layers,
    streamline_graph,
)
from hw.transforms import (
    FoldConvBiasQuant,
    LeakyReluQuantToThresholds,
    RoundHalfEvenThresholds,
)
from qphy.contracts import HOST_META
from qphy.errors import UnsupportedLayerError, UnsupportedNode
from qphy.intake import fold_shapes

log = logging.getLogger(__name__)


def _host_meta(model: ModelWrapper) -> dict:
    raw = model.get_metadata_prop(HOST_META)
    return json.loads(raw) if raw else {}


def _set_host_meta(model: ModelWrapper, **updates) -> None:
    meta = _host_meta(model)
    meta.update(updates)
    model.set_metadata_prop(HOST_META, json.dumps(meta))


def _tidy(model: ModelWrapper) -> ModelWrapper:
    for t in (
        InferShapes(),
        FoldConstants(),
        GiveUniqueNodeNames(),
        GiveReadableTensorNames(),
        InferDataTypes(),
        RemoveStaticGraphInputs(),
        RemoveUnusedTensors(),
    ):
        model = model.transform(t)
    return model


def cleanup_keep_names(model: ModelWrapper) -> ModelWrapper:
    """qonnx's cleanup_model without its renaming, so errors can name the user's own nodes."""
    from qonnx.transformation.general import GiveUniqueParameterTensors
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for node in model.graph.node:
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    for t in (
        InferShapes(),
        GiveUniqueParameterTensors(),
        FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]),
        FoldTransposeIntoQuantInit(),
        RemoveUnusedTensors(),
        RemoveStaticGraphInputs(),
    ):
        model = model.transform(t)
    for idx, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_at_{idx}"
    return model


def split_host(model: ModelWrapper) -> ModelWrapper:
    """Flatten chains folded, then the float head and the Softmax/ArgMax/... tail moved to the
    host (see :mod:`hw.legalize`)."""
    model = fold_shapes(model).transform(SplitHostHead())
    return model.transform(SplitHostPost())


def step_cleanup_qonnx(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """qonnx cleanup, the host head and tail cut off (:mod:`hw.legalize`), the early
    supported-op check (user's node names), then unique names."""
    model = split_host(cleanup_keep_names(model))
    check_qonnx_supported(model)
    model = model.transform(GiveUniqueNodeNames())
    return model.transform(GiveReadableTensorNames())


def step_quantize_input_on_host(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Move the input quantizer to the host: the accelerator's input becomes integers.

    The input Quant node is replaced by ``Mul(scale)`` on an integer-typed graph input, which
    streamlining absorbs into the first layer. Its parameters go to the host metadata so sim/
    can quantize the raw float input exactly as qonnx's Quant does.
    """
    graph_in = model.graph.input[0].name
    quant = next(
        n for n in model.find_consumers(graph_in) if n.op_type in ("Quant", "BipolarQuant")
    )
    scale = model.get_initializer(quant.input[1])
    bipolar = quant.op_type == "BipolarQuant"  # {-1, +1} as exact INT2 (hw.legalize)
    zeropt = np.zeros(1) if bipolar else model.get_initializer(quant.input[2])
    bits = np.asarray(2.0) if bipolar else model.get_initializer(quant.input[3])
    if scale is None or zeropt is None or bits is None or np.any(zeropt != 0):
        raise UnsupportedLayerError(
            [
                UnsupportedNode(
                    quant.name,
                    "Quant",
                    "input quantizer needs constant scale/bit width and zero point 0",
                )
            ],
            stage="export",
        )
    attrs = {a.name: helper.get_attribute_value(a) for a in quant.attribute}
    signed = int(attrs.get("signed", 1))
    narrow = int(attrs.get("narrow", 0))
    rounding = "BIPOLAR" if bipolar else attrs.get("rounding_mode", b"ROUND")
    rounding = rounding.decode() if isinstance(rounding, bytes) else str(rounding)
    nbits = int(np.asarray(bits).item())
    # A 1-bit quantizer's values fit the 2-bit type the RTL layers take (lossless).
    dtype = DataType[f"{'INT' if signed else 'UINT'}{max(nbits, 2)}"]
    scale_name = model.make_new_valueinfo_name()
    model.set_initializer(scale_name, np.asarray(scale, dtype=np.float32))
    mul = helper.make_node("Mul", [graph_in, scale_name], [quant.output[0]], name="HostInputScale")
    idx = list(model.graph.node).index(quant)
    model.graph.node.remove(quant)
    model.graph.node.insert(idx, mul)
    model.set_tensor_datatype(graph_in, dtype)
    head = _host_meta(model).get("input_head")
    _set_host_meta(
        model,
        input_quant={
            "scale": np.asarray(scale, dtype=np.float32).tolist(),
            "bits": nbits,
            "signed": bool(signed),
            "narrow": bool(narrow),
            "rounding_mode": rounding,
        },
        input_datatype=dtype.name,
        input_shape=_host_meta(model)["input_shape"]
        if head
        else [int(d) for d in model.get_tensor_shape(graph_in)[1:]],
    )
    return _tidy(model)


def step_convert_to_finn(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """QONNX Quant nodes -> FINN MultiThreshold / integer weights.

    ``LeakyRelu -> Quant`` pairs become thresholds first (FINN's conversion accepts only a Relu
    or an affine op before an activation quantizer); see
    :class:`hw.transforms.LeakyReluQuantToThresholds`.
    """
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

    model = model.transform(FoldConvBiasQuant())
    model = model.transform(LeakyReluQuantToThresholds())
    model = _tidy(model.transform(ConvertQONNXtoFINN()))
    return _conv1d_as_conv2d(model)


def _conv1d_as_conv2d(model: ModelWrapper) -> ModelWrapper:
    """1-D convs (``N, C, L`` tensors) become 2-D convs on ``N, C, L, 1`` (qonnx's
    Change3DTo4DTensors), so they lower to the same SWG + MVAU as 2-D ones. The frame's element
    order is unchanged, so the host's input shape and permutations stay valid."""
    from qonnx.transformation.change_3d_tensors_to_4d import (
        Change3DTo4DTensors,
        _find_invalid_nodes,
    )

    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if not any(len(model.get_tensor_shape(n.input[0])) == 3 for n in convs):
        return model
    invalid = set(_find_invalid_nodes(model))
    if invalid:
        raise UnsupportedLayerError(
            [
                UnsupportedNode(
                    n.name,
                    n.op_type,
                    "1-D convs are built as 2-D ones, which qonnx cannot do with this op in the "
                    "graph; use only QuantConv1d, QuantReLU/QuantIdentity, flatten, QuantLinear",
                )
                for n in model.graph.node
                if n.op_type in invalid
            ],
            stage="1-D to 2-D conversion",
        )
    return _tidy(model.transform(Change3DTo4DTensors()))


def step_tidy_up(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Shapes, constant folding, names, datatypes."""
    return _tidy(model)


def step_streamline(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Move scales into thresholds (FINN Streamline), leaving integer MatMul + MultiThreshold.

    Convolutions are lowered to Im2Col + MatMul in NHWC layout (the transposes this inserts
    around every conv cancel out or are absorbed into the thresholds; the ones left at the
    graph's input and output are moved to the host later), then streamlined again.
    Finally the thresholds are made to round ties to even, as the exported quantizers do (see
    :class:`hw.transforms.RoundHalfEvenThresholds`); FINN's conversion rounds ties up.
    """
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbTransposeIntoMultiThreshold,
    )
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    model = streamline_graph(dynamic_matmul_form(model).transform(Streamline()))
    if any(n.op_type == "Conv" for n in model.graph.node):
        model = model.transform(LowerConvsToMatMul())
        for _ in range(2):  # absorbing one transpose can make its neighbour absorbable
            model = model.transform(AbsorbTransposeIntoMultiThreshold())
            model = model.transform(AbsorbConsecutiveTransposes())
        model = streamline_graph(model.transform(Streamline()))
        model = model.transform(InferDataLayouts())
    model = _tidy(model)
    model = model.transform(RoundHalfEvenThresholds())
    return model.transform(BipolarToInt2())


def step_convert_to_hw(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Im2Col -> FMPadding + ConvolutionInputGenerator, MultiThreshold -> Thresholding,
    MatMul -> MVAU; a conv-to-FC Transpose + Flatten is absorbed into the FC weights.
    Then check every node became a HW layer (layout ops at the graph boundary excepted: they
    move to the host in the next step)."""
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import (
        InferThresholdingLayer,
    )
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    model = convert_graph_layers(model)
    model = model.transform(InferConvInpGen())
    model = model.transform(InferThresholdingLayer())
    model = model.transform(InferQuantizedMatrixVectorActivation())
    model = insert_forks(drop_weight_reshapes(model))
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveCNVtoFCFlatten())
    model = _tidy(model).transform(PreferRtl())
    check_hw_supported(model, boundary_layout=True)
    return model


def step_move_layout_to_host(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Cut the input/output re-orderings (NCHW <-> NHWC, Flatten) off the graph; the host
    applies them as index permutations (see :mod:`hw.layout`)."""
    from hw.layout import strip_input_layout, strip_output_layout

    model, in_perm = strip_input_layout(model)
    model, out_perm = strip_output_layout(model)
    _set_host_meta(model, input_perm=in_perm, output_perm=out_perm)
    model = _tidy(model)
    check_hw_supported(model)
    return model


def step_create_dataflow_partition(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Split off the HW layers; the host keeps the float tail (output scale/bias).

    The parent model is saved as ``dataflow_parent.onnx``; the returned model is the partition.
    """
    from finn.transformation.fpgadataflow.create_dataflow_partition import (
        CreateDataflowPartition,
    )

    tail = [
        {"op_type": n.op_type, "const": np.asarray(model.get_initializer(n.input[1])).tolist()}
        for n in host_tail(model)
    ]
    meta = _host_meta(model)
    parent = model.transform(
        CreateDataflowPartition(partition_model_dir=str(cfg.build_dir / "partition"))
    )
    parent.save(str(cfg.build_dir / "dataflow_parent.onnx"))
    sdp = [n for n in parent.graph.node if n.op_type == "StreamingDataflowPartition"]
    if len(sdp) != 1:
        raise UnsupportedLayerError(
            [
                UnsupportedNode(n.name, n.op_type, "qphy stitches exactly one dataflow partition")
                for n in sdp
            ],
            stage="dataflow partition",
        )
    child = ModelWrapper(getCustomOp(sdp[0]).get_nodeattr("model"))
    out_dt = child.get_tensor_datatype(child.graph.output[0].name)
    child.set_metadata_prop(HOST_META, json.dumps(meta))
    _set_host_meta(child, output_tail=tail, output_datatype=out_dt.name)
    return child


def step_specialize_layers(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Choose the RTL variant of every layer for ``cfg.fpga_part``; HLS fallbacks are errors."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model = specialize_graph_layers(model)
    model = model.transform(SpecializeLayers(cfg.fpga_part))
    model = model.transform(GiveUniqueNodeNames())
    check_rtl_specialized(model)
    return model


def step_apply_folding(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """PE/SIMD per layer from the cycles-per-frame (and optional latency) target."""
    from finn.util.basic import get_dsp_block

    model, used = fold_for_latency(
        model,
        cfg.target_cycles,
        cfg.target_latency_cycles,
        get_dsp_block(cfg.fpga_part),
        cfg.folding_preference is FoldingPreference.LATENCY,
    )
    model.set_metadata_prop("qphy_folding_target_cycles", str(used))
    if cfg.optimize is not None:  # the search overrides the target-driven folding
        from hw.optimize import search

        model, result = search(
            model,
            cfg.fpga_part,
            cfg.optimize,
            cfg.target_cycles,
            margin=cfg.optimize_margin,
            fifo_sizing=cfg.fifo_sizing,
        )
        model.set_metadata_prop("qphy_folding_search", json.dumps(result.to_json()))
    return fold_graph_layers(model, used)


def step_minimize_bit_width(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Smallest weight/accumulator widths; integer thresholds clipped to the input range."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import (
        MinimizeAccumulatorWidth,
    )
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    model = model.transform(MinimizeWeightBitWidth())
    model = model.transform(MinimizeAccumulatorWidth())
    model = model.transform(RoundAndClipThresholds())
    return model.transform(InferDataTypes()).transform(PreferRtl())


def fifo_depth_for(folded_shape: list[int], sizing: FifoSizing) -> int:
    """Depth of one FIFO on a stream of this folded shape (:meth:`FifoSizing.depth`)."""
    return sizing.depth(int(np.prod(folded_shape[:-1])) if len(folded_shape) > 1 else 1)


def step_insert_dwc_fifo(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Data-width converters where widths differ, FIFOs between all layers, sized by analysis."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model = model.transform(InsertDWC())
    if cfg.fifo_sizing is not FifoSizing.NONE:
        model = model.transform(InsertFIFO(create_shallow_fifos=True))
    model = model.transform(SpecializeLayers(cfg.fpga_part))
    model = model.transform(GiveUniqueNodeNames())
    for node in model.graph.node:
        if node.op_type.startswith("StreamingFIFO"):
            inst = getCustomOp(node)
            inst.set_nodeattr(
                "depth", fifo_depth_for(inst.get_nodeattr("folded_shape"), cfg.fifo_sizing)
            )
    check_rtl_specialized(model)
    return model


def step_generate_hdl(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """FINN PrepareIP: write each RTL layer's Verilog and memory files (no Vivado needed)."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    return model.transform(PrepareIP(cfg.fpga_part, cfg.clock_period_ns))


def step_export_rtl(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Copy sources + memory files into ``rtl/``, write ``manifest.json`` and ``hw_report.json``."""
    from hw.export import export_rtl

    export_rtl(model, cfg, _host_meta(model))
    return model


StepFn = Callable[[ModelWrapper, HwBuildConfig], ModelWrapper]

STEPS: dict[str, StepFn] = {
    "cleanup_qonnx": step_cleanup_qonnx,
    "quantize_input_on_host": step_quantize_input_on_host,
    "convert_to_finn": step_convert_to_finn,
    "tidy_up": step_tidy_up,
    "streamline": step_streamline,
    "convert_to_hw": step_convert_to_hw,
    "move_layout_to_host": step_move_layout_to_host,
    "create_dataflow_partition": step_create_dataflow_partition,
    "specialize_layers": step_specialize_layers,
    "apply_folding": step_apply_folding,
    "minimize_bit_width": step_minimize_bit_width,
    "insert_dwc_fifo": step_insert_dwc_fifo,
    "generate_hdl": step_generate_hdl,
    "export_rtl": step_export_rtl,
}

PRESETS: dict[Preset, list[str]] = {
    Preset.RTL: list(STEPS),
    Preset.CHECK: list(STEPS)[: list(STEPS).index("move_layout_to_host") + 1],
}
