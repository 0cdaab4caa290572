"""qphy's RTL stream layers as FINN custom ops: the ``*_rtl`` variants of FINN's HLS-only layers.

Each class subclasses FINN's HW layer (which brings the attributes, shapes, folding, data types
and the python execution that is the reference) and FINN's RTLBackend, and is registered with
FINN's own ``register_custom_op`` (the plug-in point FINN's RTL layers use; site-packages are
not edited), so FINN's SpecializeLayers picks the RTL variant as for FINN's RTL layers. The HDL
is a wrapper (:mod:`hw.layers.hdl`) around the module under ``hw/rtl``. The integer add of
two streams has no FINN RTL variant that accepts integers (ElementwiseAdd_rtl is Versal float
only), so :class:`SpecializeQphyLayers` maps it onto :class:`AddStreams_rtl` before FINN's pass.

Cycle models (beats per frame; ``exp_cycles``): fork, add, split: the input beats; concat: the
sum of its inputs' beats; max pool: the window generator's beats (K elements per output lane
group); global sum pool: the input beats. Latency (first in to first out): 0 cycles (fork,
concat, split), 1 (add, sum pool; a pool emits after its K-th window beat).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow.concat import StreamingConcat
from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
from finn.custom_op.fpgadataflow.elementwise_binary import ElementwiseAdd
from finn.custom_op.fpgadataflow.globalaccpool import GlobalAccPool
from finn.custom_op.fpgadataflow.pool import Pool
from finn.custom_op.fpgadataflow.rtl import register_custom_op
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.custom_op.fpgadataflow.split import StreamingSplit
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hw.layers import hdl
from hw.layers.wrapper import RTL_DIR

#: LUTs per lane bit of each layer (a mux/compare/add per bit; FINN-style coarse estimate).
_LUT_PER_BIT = {"fork": 0.0, "add": 1.0, "concat": 1.0, "split": 0.0, "pool": 2.0, "acc": 2.0}


class _QphyRTL(RTLBackend):
    """Shared boilerplate: HDL file generation, file list, estimates."""

    RTL_MODULE = ""
    KIND = ""

    def qphy_sv(self, name: str) -> str:  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        name = self.onnx_node.name
        (code_dir / f"{name}.sv").write_text(self.qphy_sv(name))
        self.set_nodeattr("gen_top_module", name)
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    def code_generation_ipgen(self, model, fpgapart, clk):
        self.generate_hdl(model, fpgapart, clk)

    def get_rtl_file_list(self, abspath: bool = False) -> list:
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        files = [RTL_DIR / f"{self.RTL_MODULE}.sv", code_dir / f"{self.onnx_node.name}.sv"]
        return [str(f) if abspath else f.name for f in files]

    def code_generation_ipi(self):
        return []

    def lut_estimation(self, fpgapart=None):
        width = max(self.get_instream_width(i) for i in range(len(self.onnx_node.input)))
        return int(np.ceil(_LUT_PER_BIT[self.KIND] * width)) + 8

    def bram_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0


def _bits(dt: str | DataType) -> int:
    return (DataType[dt] if isinstance(dt, str) else dt).bitwidth()


@register_custom_op
class DuplicateStreams_rtl(DuplicateStreams, _QphyRTL):
    """Stream fork (hw/rtl/qphy_fork.sv)."""

    RTL_MODULE, KIND = "qphy_fork", "fork"

    def get_nodeattr_types(self):
        return {**DuplicateStreams.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        return hdl.fork_sv(
            name,
            self.get_nodeattr("PE"),
            _bits(self.get_input_datatype()),
            self.get_num_output_streams(),
        )


@register_custom_op
class StreamingConcat_rtl(StreamingConcat, _QphyRTL):
    """Channel concat (hw/rtl/qphy_concat.sv)."""

    RTL_MODULE, KIND = "qphy_concat", "concat"

    def get_nodeattr_types(self):
        return {**StreamingConcat.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        simd = self.get_nodeattr("SIMD")
        dts = [DataType[d] for d in self.get_nodeattr("inputDataTypes")]
        return hdl.concat_sv(
            name,
            simd,
            [d.bitwidth() for d in dts],
            [d.signed() for d in dts],
            [c // simd for c in self.get_nodeattr("ChannelsPerStream")],
            self.get_output_datatype().bitwidth(),
        )


@register_custom_op
class StreamingSplit_rtl(StreamingSplit, _QphyRTL):
    """Channel split (hw/rtl/qphy_split.sv)."""

    RTL_MODULE, KIND = "qphy_split", "split"

    def get_nodeattr_types(self):
        return {**StreamingSplit.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        simd = self.get_nodeattr("SIMD")
        return hdl.split_sv(
            name,
            simd,
            _bits(self.get_input_datatype()),
            [c // simd for c in self.get_nodeattr("ChannelsPerStream")],
        )


@register_custom_op
class GlobalAccPool_rtl(GlobalAccPool, _QphyRTL):
    """Global sum pool (hw/rtl/qphy_accpool.sv); the 1/N of an average stays a Mul after it."""

    RTL_MODULE, KIND = "qphy_accpool", "acc"

    def get_nodeattr_types(self):
        return {**GlobalAccPool.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        pe = self.get_nodeattr("PE")
        idt = self.get_input_datatype()
        return hdl.accpool_sv(
            name,
            pe,
            idt.bitwidth(),
            self.get_output_datatype().bitwidth(),
            idt.signed(),
            self.get_nodeattr("NumChannels") // pe,
            int(np.prod(self.get_nodeattr("numInputVectors")[1:])),
        )

    def get_exp_cycles(self):
        # The sums leave during the last pixel: no separate output phase (FINN's HLS model
        # adds C/PE cycles for one).
        return int(np.prod(self.get_folded_input_shape()[:-1]))


@register_custom_op
class Pool_rtl(Pool, _QphyRTL):
    """Window max pool behind a depthwise SWG (hw/rtl/qphy_pool.sv); MaxPool only."""

    RTL_MODULE, KIND = "qphy_pool", "pool"

    def get_nodeattr_types(self):
        return {**Pool.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        if self.get_nodeattr("Function") != "MaxPool":
            raise ValueError(f"{name}: only MaxPool has an RTL variant")
        idt = self.get_input_datatype()
        return hdl.pool_sv(
            name,
            self.get_nodeattr("PE"),
            idt.bitwidth(),
            idt.signed(),
            int(np.prod(self.get_nodeattr("KernelSize"))),
        )


@register_custom_op
class AddStreams_rtl(ElementwiseAdd, _QphyRTL):
    """Integer add of two streams (hw/rtl/qphy_add.sv); set by SpecializeQphyLayers."""

    RTL_MODULE, KIND = "qphy_add", "add"

    def get_nodeattr_types(self):
        return {**ElementwiseAdd.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def qphy_sv(self, name):
        a, b = self.get_input_datatype(0), self.get_input_datatype(1)
        return hdl.add_sv(
            name,
            self.get_nodeattr("PE"),
            a.bitwidth(),
            a.signed(),
            b.bitwidth(),
            b.signed(),
            self.get_output_datatype().bitwidth(),
        )

    def get_exp_cycles(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))


def _is_stream_add(model, node) -> bool:
    inst = getCustomOp(node)
    ok_style = inst.get_nodeattr("lhs_style") == inst.get_nodeattr("rhs_style") == "input"
    same = list(inst.get_nodeattr("lhs_shape")) == list(inst.get_nodeattr("rhs_shape"))
    ints = all(model.get_tensor_datatype(t).is_integer() for t in node.input[:2])
    return ok_style and same and ints


class SpecializeQphyLayers(Transformation):
    """Integer two-stream ElementwiseAdd -> AddStreams_rtl (run before FINN's SpecializeLayers)."""

    def apply(self, model):
        changed = False
        for idx, node in enumerate(model.graph.node):
            if node.domain != "finn.custom_op.fpgadataflow" or node.op_type != "ElementwiseAdd":
                continue
            if not _is_stream_add(model, node):
                continue
            new = helper.make_node(
                "AddStreams_rtl",
                node.input,
                node.output,
                name=node.name,
                domain="finn.custom_op.fpgadataflow.rtl",
            )
            new.attribute.extend(a for a in node.attribute if a.name != "preferred_impl_style")
            model.graph.node.remove(node)
            model.graph.node.insert(idx, new)
            changed = True
        return model, changed
