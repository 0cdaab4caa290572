"""QONNX export with golden I/O, verified integer-exact against the Brevitas forward pass.

Output (an export directory, the hand-over to ``hw``):
    model.qonnx.onnx   the QONNX graph (batch 1), as brevitas.export.export_qonnx writes it
    golden_in.npy      float32 (n, N) inputs; half of them saturate the input quantizer
    golden_out.npy     float32 (n, K) outputs of qonnx's execute_onnx (integer * output scale)
    export_report.json what was checked: vectors, quantizers, scales, the verdict

The check: at EVERY activation quantizer (input, each ReLU, output) the integers value/scale of
qonnx's execution equal Brevitas's, for every vector; every weight quantizer gives the same
integers; the hard decisions are identical. Anything else raises BitMismatchError naming the first
differing vector and nothing is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from qphy.contracts import HOST_META, HostExtras
from qphy.errors import BitMismatchError, PipelineError
from qphy.fsutil import StagedDir, atomic_write_json
from qphy.reference import (
    EXPORT_REPORT,
    GOLDEN_IN,
    GOLDEN_OUT,
    MODEL_FILE,
    chunks,
    execute_batch,
)

log = logging.getLogger(__name__)

REPORT_FILE = EXPORT_REPORT


@dataclass(frozen=True)
class QuantizerTrace:
    """Integers seen at one quantizer for all vectors: (n, ...) int64, plus its scale."""

    name: str
    ints: np.ndarray
    scale: np.ndarray


def _to_ints(values: np.ndarray, scale: np.ndarray, where: str) -> np.ndarray:
    """value/scale as exact integers; non-integral quotients are an error, never rounded away."""
    q = np.asarray(values, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    r = np.round(q)
    if not np.array_equal(q, r):
        bad = np.argwhere(q != r)[0]
        raise BitMismatchError(
            f"{where}: value/scale is not an integer",
            int(bad[0]),
            tuple(int(i) for i in bad[1:]),
            "an integer",
            float(q[tuple(bad)]),
        )
    return r.astype(np.int64)


def torch_traces(model: torch.nn.Module, x: np.ndarray) -> tuple[list[QuantizerTrace], np.ndarray]:
    """Run Brevitas on ``x``; return the integers at every activation quantizer and the output."""
    traces: list[QuantizerTrace] = []
    hooks = []
    quantizers = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, QuantIdentity | QuantReLU)
    ]

    def hook(name):
        def fn(_mod, _inp, out):
            scale = out.scale.detach().numpy()
            traces.append(
                QuantizerTrace(name, _to_ints(out.value.detach().numpy(), scale, name), scale)
            )

        return fn

    for name, mod in quantizers:
        hooks.append(mod.act_quant.register_forward_hook(hook(name)))
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.from_numpy(x))
            out = getattr(out, "value", out).numpy()  # a QuantTensor or a plain tensor
    finally:
        for h in hooks:
            h.remove()
    return traces, out


def qonnx_traces(model: ModelWrapper, x: np.ndarray) -> tuple[list[QuantizerTrace], np.ndarray]:
    """Run qonnx's executor on all of ``x`` at once; integers at every activation Quant node."""
    ctx = execute_batch(model, x, full_context=True)
    traces = []
    for node in model.graph.node:
        if node.op_type != "Quant" or model.get_initializer(node.input[0]) is not None:
            continue  # weight/bias quantizers are checked separately
        scale = np.asarray(ctx[node.input[1]])
        traces.append(
            QuantizerTrace(node.name, _to_ints(ctx[node.output[0]], scale, node.name), scale)
        )
    return traces, np.asarray(ctx[model.graph.output[0].name])


def check_weights(torch_model: torch.nn.Module, model: ModelWrapper, branched: bool = False) -> int:
    """Weight integers of every QuantLinear/QuantConv2d equal those of its weight Quant node.

    ``branched``: the graph's node order need not be the modules' order, so each layer is
    paired with the not yet paired weight node of equal integers (if none, with the first
    unpaired one, whose mismatch is then reported)."""
    layers = [m for m in torch_model.modules() if isinstance(m, QuantLinear | QuantConv2d)]
    weight_nodes = []
    for node in model.graph.node:
        consumers = model.find_consumers(node.output[0]) if node.op_type == "Quant" else []
        init = model.get_initializer(node.input[0]) if node.op_type == "Quant" else None
        # A weight Quant feeds input 1 of a Gemm/MatMul/Conv; a bias Quant feeds input 2.
        if init is not None and any(
            c.op_type in ("Gemm", "MatMul", "Conv") and c.input[1] == node.output[0]
            for c in consumers
        ):
            weight_nodes.append(node)
    if len(layers) != len(weight_nodes):
        raise PipelineError(
            f"export has {len(weight_nodes)} weight quantizers, model has {len(layers)} layers"
        )
    from qonnx.custom_op.registry import getCustomOp

    def node_ints(node, shape) -> np.ndarray:
        ctx = {name: model.get_initializer(name) for name in node.input}
        ctx[node.output[0]] = None
        getCustomOp(node).execute_node(ctx, model.graph)
        got_ints = _to_ints(ctx[node.output[0]], model.get_initializer(node.input[1]), node.name)
        # Gemm may carry the weight transposed relative to torch's (out, in) layout.
        return got_ints.T if got_ints.shape != shape else got_ints

    free = list(weight_nodes)
    for idx, layer in enumerate(layers):
        qw = layer.quant_weight()
        ref = _to_ints(qw.value.detach().numpy(), qw.scale.detach().numpy(), f"layer {idx}")
        node = free[0]
        if branched:
            node = next((n for n in free if np.array_equal(node_ints(n, ref.shape), ref)), node)
        free.remove(node)
        got_ints = node_ints(node, ref.shape)
        if got_ints.shape != ref.shape or not np.array_equal(ref, got_ints):
            if got_ints.shape != ref.shape:
                raise PipelineError(f"weights of layer {idx}: shape {ref.shape} vs {node.name}")
            where = tuple(int(i) for i in np.argwhere(ref != got_ints)[0])
            raise BitMismatchError(
                f"weights of layer {idx} ({node.name})",
                0,
                where,
                int(ref[where]),
                int(got_ints[where]),
            )
    return len(layers)


def compare_traces(ref: list[QuantizerTrace], got: list[QuantizerTrace], first: int = 0) -> None:
    """Raise BitMismatchError at the first vector where any quantizer's integers differ
    (the traces are of vectors ``first, first + 1, ...``: a chunk of the golden set)."""
    if len(ref) != len(got):
        raise PipelineError(
            f"Brevitas has {len(ref)} activation quantizers, the QONNX graph {len(got)}"
        )
    n = ref[0].ints.shape[0]
    bad_vectors = np.zeros(n, dtype=bool)
    for r, g in zip(ref, got, strict=True):
        if r.ints.shape != g.ints.shape:
            raise PipelineError(f"quantizer {r.name}: shape {r.ints.shape} vs {g.ints.shape}")
        bad_vectors |= (r.ints != g.ints).reshape(n, -1).any(axis=1)
    if bad_vectors.any():
        v = int(np.argmax(bad_vectors))
        for r, g in zip(ref, got, strict=True):
            diff = np.flatnonzero(r.ints[v] != g.ints[v])
            if diff.size:
                i = int(diff[0])
                raise BitMismatchError(
                    f"quantizer {r.name} / {g.name}",
                    first + v,
                    i,
                    int(r.ints[v].flat[i]),
                    int(g.ints[v].flat[i]),
                    int(bad_vectors.sum()),
                    n,
                )


def compare_traces_dag(
    ref: list[QuantizerTrace], got: list[QuantizerTrace], first: int = 0
) -> None:
    """:func:`compare_traces` for a graph with branches: the exporter's topological order of
    the Quant nodes need not be Brevitas's call order, so every Brevitas quantizer call is
    paired with a not yet paired QONNX Quant node of the same shape and equal integers on
    every vector (a one-to-one pairing); the first one without a partner is a mismatch."""
    if len(ref) != len(got):
        raise PipelineError(
            f"Brevitas has {len(ref)} activation quantizers, the QONNX graph {len(got)}"
        )
    free = list(got)
    for r in ref:
        same = [g for g in free if g.ints.shape == r.ints.shape]
        hit = next((g for g in same if np.array_equal(g.ints, r.ints)), None)
        if hit is None:
            if not same:
                raise PipelineError(f"quantizer {r.name}: no QONNX Quant node of its shape")
            compare_traces([r], [same[0]], first)  # raises, naming the first differing vector
            raise PipelineError(f"quantizer {r.name}: unpaired")  # pragma: no cover
        free.remove(hit)


def saturating(x: np.ndarray, scale: float, bits: int = 8) -> np.ndarray:
    """Per vector: does any element fall outside the signed ``bits``-bit quantizer's range?"""
    q = np.round(x / scale).reshape(len(x), -1)
    return ((q > 2 ** (bits - 1) - 1) | (q < -(2 ** (bits - 1)))).any(axis=1)


def hard_decisions(soft: np.ndarray) -> np.ndarray:
    """BPSK decisions; 0 maps to +1 in both the float and the hardware path."""
    return np.where(soft >= 0, 1, -1).astype(np.int8)


def export_verified(
    torch_model: torch.nn.Module,
    golden_in: np.ndarray,
    out_dir: Path,
    meta: dict,
    host: HostExtras | None = None,
    branched: bool = False,
) -> dict:
    """Export, verify and write the export directory atomically; returns the report.

    ``golden_in`` is ``(n, *input_shape)``; the graph is exported for batch 1 of that shape.
    ``host`` (the target's input pre-processing and hard decision) is stored in the model's
    metadata (``qphy_host``), where the hw stage picks it up into the HostSpec; with the
    ``sign`` decision the BPSK hard decisions are compared too. ``branched``: pair the
    quantizers by their integers, not by order (:func:`compare_traces_dag`).
    """
    host = host or HostExtras()
    # A model with forks and joins says so itself (the flow's export stage passes no flag).
    branched = branched or bool(getattr(torch_model, "qphy_branched", False))
    check_decisions = host.decision == "sign"
    with StagedDir(out_dir, "export") as staged:
        tmp = staged.path
        torch_model.eval()
        export_qonnx(
            torch_model,
            torch.zeros(1, *golden_in.shape[1:]),
            export_path=str(tmp / MODEL_FILE),
            dynamo=False,
        )
        qmodel = ModelWrapper(str(tmp / MODEL_FILE))
        qmodel.set_metadata_prop(HOST_META, json.dumps(host.to_json()))
        qmodel.save(str(tmp / MODEL_FILE))
        qmodel = qmodel.transform(InferShapes())
        n_weights = check_weights(torch_model, qmodel, branched)
        compare = compare_traces_dag if branched else compare_traces
        q_outs = []
        # In chunks: every quantizer's integers of a million vectors at once do not fit in
        # memory (qphy.reference.EXEC_CHUNK); each chunk is checked and only its outputs kept.
        for sl in chunks(len(golden_in)):
            ref, t_out = torch_traces(torch_model, golden_in[sl])
            got, q_out = qonnx_traces(qmodel, golden_in[sl])
            compare(ref, got, sl.start)
            dec_t, dec_q = hard_decisions(t_out), hard_decisions(q_out)
            if check_decisions and not np.array_equal(dec_t, dec_q):
                v, i = (int(a) for a in np.argwhere(dec_t != dec_q)[0])
                raise BitMismatchError(
                    "hard decisions", sl.start + v, i, int(dec_t[v, i]), int(dec_q[v, i])
                )
            q_outs.append(q_out)
        q_out = np.concatenate(q_outs)
        np.save(tmp / GOLDEN_IN, golden_in.astype(np.float32))
        np.save(tmp / GOLDEN_OUT, q_out.astype(np.float32))
        in_scale = float(np.asarray(got[0].scale).ravel()[0])
        report = {
            **meta,
            "qonnx_matches_torch": True,
            "vectors_checked": int(golden_in.shape[0]),
            "activation_quantizers_checked": [g.name for g in got],
            "weight_quantizers_checked": n_weights,
            "input_scale": in_scale,
            "output_scale": float(np.asarray(got[-1].scale).ravel()[0]),
            "saturating_vectors": int(saturating(golden_in, in_scale).sum()),
        }
        atomic_write_json(tmp / REPORT_FILE, report)
        staged.publish()
        log.info("exported %s: %d vectors integer-exact", out_dir, golden_in.shape[0])
        return report
