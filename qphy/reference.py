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

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from qphy.defaults import SATURATE_SCALE
from qphy.errors import MalformedModelError

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
    return m.transform(InferShapes())


def execute_batch(model: ModelWrapper, inputs: np.ndarray, full_context: bool = False):
    """qonnx's executor on a whole batch at once: the output array, or every tensor by name."""
    m = batched_model(model, int(inputs.shape[0]))
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


def random_inputs(shape: tuple[int, ...], n: int, seed: int, saturate_scale: float) -> np.ndarray:
    """Seeded Gaussian inputs; every second vector is scaled up far enough to saturate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    x[1::2] *= np.float32(saturate_scale)
    return x


def load_reference(path: Path) -> ModelWrapper:
    """The QONNX model, cleaned up, for golden execution."""
    from hw.runner import load_model  # noqa: PLC0415 - model validation lives in hw

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
