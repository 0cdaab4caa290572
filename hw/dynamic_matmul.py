"""Graph rewrites for a matrix-vector product of two run-time streams (the varying-channel
DetNet's ``H^T H x``, :mod:`models.detector.detnet_iid_hw`), so that FINN makes it an MVAU with
``mem_mode = dynamic`` (finn-plus 1.6.1, RTL, no Vivado; tests/hw/test_dynamic_matmul.py).

The export gives ``Reshape(x, [-1, 1, K]) @ Reshape(g, [-1, K, K]) -> Reshape([-1, K])`` with
``g`` one output of a Split of the network input, the input's scale a Mul before that Split.

* :class:`MoveScalarMulPastSplit`: a scalar Mul before a Split goes onto each of its outputs
  (exact: a scalar commutes with a split), so the split streams integers.
* :class:`DynamicMatVec`: the batched product becomes the plain ``MatMul(x [1, K], G [K, K])``
  FINN's MVAU inference takes, and a scalar Mul on the matrix moves past the MatMul
  (exact: ``x (c G) = c (x G)``), where streamlining absorbs it into the next thresholds.
* :func:`drop_weight_reshapes` (after the MVAU conversion): the ``[1, K^2] -> [K, K]`` Reshape
  of the matrix stream is a relabelling, not a re-ordering: FINN's MVAU reads its dynamic
  weights as the folded shape ``[MW][MH / PE][PE]`` (``get_folded_input_shape(1)``), i.e.
  ``G`` row by row, PE elements per beat, for ANY folding; the row-major ``vec(G)`` the host
  streams is that order, so the dynamic MVAUs fold like any other layer (SIMD only sets how
  many rows the MVU consumes per cycle from the loader's buffer). The bit-exact RTL verdict
  is what confirms the order (tests/flow/test_detnet_iid_build.py builds one with PE, SIMD > 1).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation


def _scalar(model: ModelWrapper, node) -> np.ndarray | None:
    if node is None or node.op_type != "Mul":
        return None
    c = model.get_initializer(node.input[1])
    return None if c is None or np.asarray(c).size != 1 else np.asarray(c)


def has_dynamic_matmul(model: ModelWrapper) -> bool:
    """A MatMul (or MVAU) whose two operands are both run-time tensors?"""
    for n in model.graph.node:
        if n.op_type == "MatMul" and all(model.get_initializer(t) is None for t in n.input[:2]):
            return True
    return False


class MoveScalarMulPastSplit(Transformation):
    """``Mul(t, c) -> Split`` becomes ``Split(t) -> Mul(., c)`` on every output (c a scalar)."""

    def apply(self, model):
        for split in model.graph.node:
            if split.op_type != "Split":
                continue
            mul = model.find_producer(split.input[0])
            c = _scalar(model, mul)
            if c is None or model.is_fork_node(mul):
                continue
            split.input[0] = mul.input[0]
            idx = list(model.graph.node).index(split)
            for j, out in enumerate(list(split.output)):
                raw = model.make_new_valueinfo_name()
                model.set_tensor_shape(raw, model.get_tensor_shape(out))
                model.set_tensor_datatype(raw, model.get_tensor_datatype(mul.input[0]))
                split.output[j] = raw
                const = model.make_new_valueinfo_name()
                model.set_initializer(const, c.astype(np.float32))
                model.graph.node.insert(idx + 1, helper.make_node("Mul", [raw, const], [out]))
            model.graph.node.remove(mul)
            return model, True
        return model, False


class DynamicMatVec(Transformation):
    """``Reshape(x)[1,1,K] @ (c *) Reshape(g)[1,K,K] -> Reshape[1,K]`` becomes
    ``MatMul(x, Reshape(g)[K,K])`` followed by ``Mul(c)`` (c a scalar, if any)."""

    def apply(self, model):
        for mm in model.graph.node:
            if mm.op_type != "MatMul" or any(
                model.get_initializer(t) is not None for t in mm.input
            ):
                continue
            rx, rg = (model.find_producer(t) for t in mm.input)
            (rout,) = model.find_consumers(mm.output[0]) or [None]
            if not (rx and rg and rout) or {rx.op_type, rg.op_type, rout.op_type} != {"Reshape"}:
                continue
            k = model.get_tensor_shape(rx.input[0])[-1]
            if model.get_tensor_shape(rg.output[0])[-2:] != [k, k]:
                continue
            mul = model.find_producer(rg.input[0])
            c = _scalar(model, mul)
            c_used = c if c is not None and not model.is_fork_node(mul) else None
            g_src = mul.input[0] if c_used is not None else rg.input[0]
            shape = model.make_new_valueinfo_name()
            model.set_initializer(shape, np.array([k, k], dtype=np.int64))
            g2 = model.make_new_valueinfo_name()
            model.set_tensor_shape(g2, [k, k])
            model.set_tensor_datatype(g2, model.get_tensor_datatype(g_src))
            idx = list(model.graph.node).index(mm)
            nodes = [
                helper.make_node("Reshape", [g_src, shape], [g2]),
                helper.make_node(
                    "MatMul",
                    [rx.input[0], g2],
                    [rout.output[0] if c_used is None else mm.output[0]],
                ),
            ]
            if c_used is not None:
                const = model.make_new_valueinfo_name()
                model.set_initializer(const, c_used.astype(np.float32))
                model.set_tensor_shape(mm.output[0], [1, k])
                nodes.append(helper.make_node("Mul", [mm.output[0], const], [rout.output[0]]))
            for i, node in enumerate(nodes):
                model.graph.node.insert(idx + i, node)
            model.graph.node.remove(mm)
            model.graph.node.remove(rout)
            for old in (rx, rg, *([mul] if c_used is not None else [])):
                if not model.find_consumers(old.output[0]):  # dead now
                    model.graph.node.remove(old)
            return model, True
        return model, False


def dynamic_matmul_form(model: ModelWrapper) -> ModelWrapper:
    """Both rewrites, before streamlining (no-op without a dynamic MatMul)."""
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    if not has_dynamic_matmul(model):
        return model
    model = model.transform(MoveScalarMulPastSplit())
    model = model.transform(DynamicMatVec())
    return model.transform(InferShapes()).transform(InferDataTypes())


def drop_weight_reshapes(model: ModelWrapper) -> ModelWrapper:
    """Removes the ``[1, K^2] -> [K, K]`` Reshape feeding a dynamic MVAU's weight stream (see
    the module docstring: a relabelling of the row-major matrix stream at any PE/SIMD)."""
    for node in list(model.graph.node):
        if not node.op_type.startswith("MVAU") or len(node.input) < 2:
            continue
        inst = getCustomOp(node)
        if inst.get_nodeattr("mem_mode") != "dynamic":
            continue
        rs = model.find_producer(node.input[1])
        if rs is None or rs.op_type != "Reshape" or model.is_fork_node(rs):
            continue
        node.input[1] = rs.input[0]
        model.graph.node.remove(rs)
    return model


# ---------------------------------------------------------------------------------------------
# RTL export and stitching of a dynamic MVAU: its weight stream passes through FINN's dynamic
# loader (finn-rtllib dynload: a double-buffered weight store) between the graph's stream and
# the MVAU's ``in1_V`` port, where a constant MVAU has its memstream.
# ---------------------------------------------------------------------------------------------


def dynload_entry(inst, gen_dir, src_dir, files: list[str], copy) -> dict:
    """The manifest's ``memstream`` entry of a dynamic MVAU (``dynamic``: True, no init file);
    copies the loader's sources with ``copy(src, dst_dir)`` into ``files``."""
    from pathlib import Path

    from hw.toolchain import finn_rtllib_dir

    wrapper = next(Path(gen_dir).glob("*_dynamic_load_wrapper.v"))
    for f in (wrapper, finn_rtllib_dir() / "dynload/hdl/dynamic_load.sv"):
        files.append(copy(f, src_dir))
    return {
        "module": wrapper.stem,
        "dynamic": True,
        "width_bits": int(inst.get_instream_width_padded(1)),
    }


def dynload_instance(node, sources: dict, wanted: dict, instance, connections, module_ports):
    """SystemVerilog lines of the loader of a dynamic MVAU ``node``; rewires ``wanted`` (the
    MVAU's port map) so the graph's weight stream enters the loader and the loader's output
    the MVAU's ``in1_V``."""
    ms = node.memstream
    w = ms["width_bits"]
    lines = [
        f"\twire [{w - 1}:0] {node.name}_w_tdata;",
        f"\twire {node.name}_w_tvalid;",
        f"\twire {node.name}_w_tready;",
    ]
    ld_wanted = {"ap_clk": "ap_clk", "ap_rst_n": "ap_rst_n"}
    for sig in ("TDATA", "TVALID", "TREADY"):
        ld_wanted[f"s_axis_0_{sig}"] = wanted[f"in1_V_{sig}"]
        ld_wanted[f"m_axis_0_{sig}"] = f"{node.name}_w_{sig.lower()}"
        wanted[f"in1_V_{sig}"] = f"{node.name}_w_{sig.lower()}"
    ports = module_ports(sources[ms["module"]], ms["module"])
    lines.append(instance(ms["module"], f"{node.name}_wdynld", {}, connections(ports, ld_wanted)))
    return lines
