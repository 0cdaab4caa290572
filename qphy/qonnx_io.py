"""Reading a QONNX file: the one validating loader every stage uses (kernel, finn-free).

It lived in the FINN runner (hw/runner.py), which made the reference model (qphy/reference.py)
reach up into hw through a lazy import and closed a circle hw/checks -> qphy/reference ->
hw/runner -> hw/steps -> hw/checks. Loading a model needs only qonnx, so it sits in the kernel.
"""

from __future__ import annotations

from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from qphy.errors import MalformedModelError


def load_model(path: Path) -> ModelWrapper:
    """Load an ONNX/QONNX file; anything unreadable or structurally wrong is MalformedModelError."""
    path = Path(path)
    if not path.is_file():
        raise MalformedModelError(f"{path}: no such model file")
    try:
        model = ModelWrapper(str(path))
    except Exception as exc:  # onnx raises protobuf/OS/value errors of many kinds
        raise MalformedModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__})"
        ) from exc
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(graph.node) == 0 or len(inputs) != 1 or len(graph.output) != 1:
        raise MalformedModelError(
            f"{path}: expected a graph with nodes, one input and one output; got "
            f"{len(graph.node)} nodes, {len(inputs)} inputs, {len(graph.output)} outputs"
        )
    try:
        from qonnx.transformation.general import RemoveStaticGraphInputs
        from qonnx.transformation.infer_shapes import InferShapes

        model = model.transform(RemoveStaticGraphInputs())
        model.get_tensor_shape(graph.input[0].name)
        model = model.transform(InferShapes())
    except Exception as exc:
        raise MalformedModelError(f"{path}: shapes cannot be inferred ({exc})") from exc
    return model
