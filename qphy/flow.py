"""The top-level flow: directory-to-directory stages, from a target (or a QONNX file) to a verdict.

    export  (quant: verified QONNX + golden floats)       -> OUT/export/
    hw      (hw: FINN steps, RTL, stitched top, Manifest)  -> OUT/hw/
    vectors (qphy.host: golden floats -> stream integers)  -> OUT/sim/vectors_*.npy
    sim     (sim: Verilator + bench, Report)               -> OUT/sim/, OUT/report.json
    [bitstream -> board: bitstreams/, from OUT/hw/]

Each stage reads only its input directory, so any stage can be re-run from there. A build is
staged in a hidden sibling of OUT and published in one rename: a failed build leaves nothing
behind; a failed verdict (bit mismatch, latency over budget) publishes its report, then raises.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qphy import host
from qphy.contracts import Manifest, Report
from qphy.defaults import SATURATE_SCALE
from qphy.errors import (
    AccumulatorOverflowError,
    BitMismatchError,
    LatencyBudgetError,
    MalformedModelError,
)
from qphy.fsutil import StagedDir, atomic_write_json
from qphy.reference import (
    EXPORT_REPORT,
    GOLDEN_IN,
    GOLDEN_OUT,
    MODEL_FILE,
    GoldenSet,
    accelerator_integers,
    chunks,
    execute_batch,
    extend,
    float_tail,
    load_reference,
    random_inputs,
    read_export,
)
from qphy.targets import Target

log = logging.getLogger(__name__)

#: The keys every build adds to report.json after the common ones: FINN's estimate against the
#: part, the per-layer table, the folding target's verdict and what the estimate leaves out.
FLOW_EXTRAS = ("estimated_fit", "layers", "folding_target", "estimate_notes")


def export_stage(target: Target, cfg, out_dir: Path, n_vectors: int, ckpt_dir=None) -> dict:
    """Verified QONNX export of a target's variant with ``n_vectors`` golden vectors."""
    from quant.export import export_verified  # noqa: PLC0415 - torch only when exporting

    model = target.load_or_train(cfg, ckpt_dir)
    x = np.ascontiguousarray(target.golden_inputs(cfg, model, n_vectors), dtype=np.float32)
    meta = {"variant": cfg.name, "target": target.name}
    return export_verified(target.hw_model(model), x, Path(out_dir), meta, target.host(cfg))


def onnx_export_stage(
    path: Path,
    out_dir: Path,
    n_vectors: int,
    seed: int,
    variant: str | None = None,
    input_precision: str | None = None,
) -> dict:
    """A user's QONNX file as an export directory: checked for supported ops first (every
    offending node listed), then seeded random inputs (half saturating) and qonnx's outputs.

    With ``input_precision`` (``fixed<W,I>`` ...) an input quantizer is inserted (see
    :class:`hw.legalize.InsertInputQuant`); the golden inputs then lie on the declared grid,
    where the rewritten graph must give the original graph's outputs bit for bit.
    """
    from hw.checks import check_qonnx_supported  # noqa: PLC0415
    from hw.steps import cleanup_keep_names, split_host  # noqa: PLC0415
    from qphy.qonnx_io import load_model  # noqa: PLC0415

    path = Path(path)
    user = load_model(path)
    name = user.graph.input[0].name
    check_batch_one(tuple(user.get_tensor_shape(name)), name)
    model = cleanup_keep_names(user)
    precision = None
    if input_precision is not None:
        from hw.legalize import InsertInputQuant  # noqa: PLC0415
        from qphy.intake import parse_input_precision  # noqa: PLC0415

        precision = parse_input_precision(input_precision)
        model = model.transform(InsertInputQuant(precision))
    check_qonnx_supported(split_host(model))  # transforms work on copies
    report = {"variant": variant or path.stem.split(".")[0], "source": str(path.resolve())}
    with StagedDir(out_dir, "export", inputs=(path,)) as staged:
        if precision is None:  # the reference is the user's file as it is
            shutil.copyfile(path, staged.path / MODEL_FILE)
        else:
            model.save(str(staged.path / MODEL_FILE))
        ref = load_reference(staged.path / MODEL_FILE)
        shape = tuple(ref.get_tensor_shape(ref.graph.input[0].name))[1:]
        if precision is None:
            x = random_inputs(shape, n_vectors, seed, SATURATE_SCALE)
        else:
            lo, hi = precision.int_range
            rng = np.random.default_rng(seed)
            x = (rng.integers(lo, hi + 1, (n_vectors, *shape)) * precision.scale).astype(np.float32)
        y = execute_batch(ref, x).reshape(len(x), -1)
        if precision is not None:
            y0 = execute_batch(load_reference(path), x).reshape(len(x), -1)
            if not np.array_equal(y, y0):
                raise MalformedModelError(
                    f"with the input declared {precision.text}, the graph's outputs differ from "
                    "the original graph's on inputs of that precision (the float head changes "
                    "them): quantize the input in the model instead"
                )
            report["input_precision"] = precision.text
        np.save(staged.path / GOLDEN_IN, x)
        np.save(staged.path / GOLDEN_OUT, y.astype(np.float32))
        atomic_write_json(staged.path / EXPORT_REPORT, report)
        staged.publish()
    return report


def check_batch_one(shape: tuple, input_name: str) -> None:
    """The accelerator streams one vector per frame: a graph exported for a batch of B vectors
    would be built as one frame of B vectors, and every per-vector figure would be off by B."""
    if shape and shape[0] != 1:
        raise MalformedModelError(
            f"graph input '{input_name}' has batch {shape[0]} (shape {list(shape)}): export the "
            "model with batch 1 (e.g. torch.zeros(1, ...) as the example input); the "
            "accelerator streams one vector at a time"
        )


def hw_stage(export_dir: Path, hw_dir: Path, hw_cfg) -> Manifest:
    """FINN build of the export's model into ``hw_dir``; returns the RTL's Manifest."""
    from hw.runner import run_build  # noqa: PLC0415 - finn only when building

    result = run_build(Path(export_dir) / MODEL_FILE, hw_cfg, Path(hw_dir))
    return Manifest.read(result.rtl_dir / Manifest.FILE)


def vectors_stage(
    golden: GoldenSet, manifest: Manifest, sim_dir: Path
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Golden floats -> the integers the accelerator receives and must return (stream order),
    through the same host runtime the board driver uses; saved in ``sim_dir``.

    Returns ``(inputs, expected, verified)``; ``verified`` is empty for a quantized output
    (the golden outputs are integers times the output scale: the tail is inverted exactly).
    For a float output tail (the last layer's scale and bias), the expected integers come from
    qonnx's execution of the reference up to the last linear layer's integer accumulator (see
    :func:`qphy.reference.accelerator_integers`), and ``verified`` states what is checked as
    integers and how far the host's float tail is from qonnx's golden floats.
    """
    from sim.verdict import VECTORS_EXPECTED, VECTORS_IN  # noqa: PLC0415

    inputs = host.stream_inputs(golden.inputs, manifest.host)
    verified: dict = {}
    model = load_reference(golden.model_path)
    tail = float_tail(model)
    spec = manifest.host
    outputs = golden.outputs
    if spec.input_head or spec.output_post:  # proven on qonnx's run of the original graph
        from qphy.intake import walk_post  # noqa: PLC0415
        from qphy.intake_check import verify_head  # noqa: PLC0415

        posts = []
        for sl in chunks(len(golden.inputs)):  # a full context of every vector does not fit
            ctx = execute_batch(model, golden.inputs[sl], full_context=True)
            if spec.input_head:
                verified.update(verify_head(model, ctx, golden.inputs[sl], spec, sl.start))
            if spec.output_post:
                posts.append(np.asarray(ctx[walk_post(model)[1]]).reshape(sl.stop - sl.start, -1))
        if spec.output_post:
            outputs = np.concatenate(posts)
    if tail is None:
        expected = host.expected_integers(outputs, manifest.host)
    else:
        ints = accelerator_integers(model, tail, golden.inputs)
        expected = host.stream_order(ints, manifest.host)
        verified.update(_float_tail_verified(tail, ints, expected, golden, manifest))
    if spec.output_post:
        from qphy.intake_check import verify_post  # noqa: PLC0415

        verified.update(verify_post(expected, golden.outputs, spec))
    Path(sim_dir).mkdir(parents=True, exist_ok=True)
    np.save(Path(sim_dir) / VECTORS_IN, inputs)
    np.save(Path(sim_dir) / VECTORS_EXPECTED, expected)
    return inputs, expected, verified


#: How far (relative to the largest golden output) the host's float tail may be from qonnx's
#: golden floats: float32 re-association of the last layer's sum, nothing more.
FLOAT_TAIL_RTOL = 1e-4


def _float_tail_verified(tail, ints, expected, golden: GoldenSet, manifest: Manifest) -> dict:
    """Check the host's float tail on the reference integers against the golden floats."""
    spec = manifest.host
    # No tail at all is fine when the output scale is 1 (bipolar weights and inputs): the
    # comparison below catches any other case.
    y = host.outputs(expected, spec).astype(np.float64)
    ref = golden.outputs.reshape(len(golden.outputs), -1).astype(np.float64)
    diff = float(np.max(np.abs(y - ref))) if y.size else 0.0
    bound = FLOAT_TAIL_RTOL * max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-12)
    if not diff <= bound:
        raise MalformedModelError(
            f"the host's output tail ({[op.op_type for op in spec.output_tail]}) applied to the "
            f"reference integers of {tail.description} differs from qonnx's outputs by {diff:g} "
            f"(> {bound:g}): the accelerator's output is not that layer's accumulator"
        )
    hi = int(np.max(np.abs(ints))) if ints.size else 0
    return {
        "verified": {
            "integers": (
                f"accelerator output == integer accumulator of {tail.linear.name} "
                f"({tail.linear.op_type}: quantized input x quantized weights, from qonnx's "
                f"execution of the reference), bit-exact; max |accumulator| {hi}"
            ),
            "float_tail": (
                "host applies "
                + (" -> ".join(op.op_type for op in spec.output_tail) or "nothing (scale 1)")
                + " in float32 (bias and scales, not bit-exact: float re-association)"
            ),
        },
        "float_tail_max_abs_diff": diff,
        "float_tail_max_abs_golden": float(np.max(np.abs(ref))) if ref.size else 0.0,
    }


def build_and_verify(
    export: Path | Callable[[Path], object],
    out_dir: Path,
    hw_cfg=None,
    sim_cfg=None,
    extras: dict | None = None,
    inputs: tuple = (),
) -> Report:
    """export -> hw -> vectors -> sim into ``out_dir``; returns the Report (also report.json).

    ``export`` is an export directory (copied into OUT/export) or a function writing one into
    the path it is given. The export's golden vectors come first; if ``sim_cfg.n_vectors`` asks
    for more, seeded extra vectors (half saturating) get their golden outputs from qonnx.
    ``extras`` (the target's figures) are added to the report. ``inputs`` (the user's model,
    checkpoint folder) may not lie inside ``out_dir`` (see :func:`qphy.fsutil.check_out_dir`).
    """
    from hw.config import HwBuildConfig  # noqa: PLC0415
    from sim.config import SimConfig  # noqa: PLC0415
    from sim.coverage import CORNER_DIR, corner_golden  # noqa: PLC0415
    from sim.verdict import build_rtl_sim, simulate  # noqa: PLC0415

    hw_cfg, sim_cfg = hw_cfg or HwBuildConfig(), sim_cfg or SimConfig()
    times: dict[str, float] = {}
    failure: Exception | None = None
    with StagedDir(out_dir, "build", inputs) as staged:
        tmp = staged.path
        t0 = time.perf_counter()
        if callable(export):
            export(tmp / "export")
        else:
            shutil.copytree(Path(export), tmp / "export")
        times["export_s"] = round(time.perf_counter() - t0, 2)
        golden = extend(read_export(tmp / "export"), sim_cfg.n_vectors, sim_cfg.seed)
        t0 = time.perf_counter()
        manifest = hw_stage(tmp / "export", tmp / "hw", hw_cfg)
        times["hw_build_s"] = round(time.perf_counter() - t0, 2)
        _, _, verified = vectors_stage(golden, manifest, tmp / "sim")
        if sim_cfg.corner_vectors:  # sim/coverage.py: drive every accumulator to its extremes
            corners = corner_golden(golden, tmp / "hw", manifest.host, tmp / "sim")
            if corners is not None:
                vectors_stage(corners, manifest, tmp / "sim" / CORNER_DIR)
        times["verilator_build_s"] = round(build_rtl_sim(tmp / "hw", tmp / "sim", sim_cfg), 2)
        t0 = time.perf_counter()
        try:
            report = simulate(tmp / "hw", tmp / "sim", sim_cfg, golden.variant)
        except (BitMismatchError, LatencyBudgetError, AccumulatorOverflowError) as exc:
            failure = exc  # the report is written; publish it, then raise
            report = Report.read(tmp / "sim" / "run" / Report.FILE)
        times["simulation_s"] = round(time.perf_counter() - t0, 2)
        from hw.fit import estimated_fit  # noqa: PLC0415 - finn's tables only when building
        from hw.layer_report import layer_report, write_svg  # noqa: PLC0415

        fit = estimated_fit(report.estimated_resources, report.fpga_part)
        layers = layer_report(tmp / "hw")
        write_svg(layers, tmp / "accelerator.svg")
        report = report.with_extras(**(extras or {}), **verified, estimated_fit=fit, **layers)
        search = json.loads((tmp / "hw" / "hw_report.json").read_text()).get("folding_search")
        if search:  # --optimize: the chosen folding and the frontier beside the measurement
            report = report.with_extras(folding_search=search)
        report.write(tmp / Report.FILE)
        atomic_write_json(tmp / "timings.json", times)
        staged.publish()
    log.info("verdict %s: %s", out_dir, report)
    if failure is not None:
        raise failure
    return report


def build_target(target: Target, cfg, out_dir: Path, hw_cfg, sim_cfg, ckpt_dir=None) -> Report:
    """The whole flow for a registered target's variant."""
    extras = target.report_extras(cfg, ckpt_dir)
    return build_and_verify(
        lambda d: export_stage(target, cfg, d, sim_cfg.n_vectors, ckpt_dir),
        out_dir,
        hw_cfg,
        sim_cfg,
        extras,
        inputs=(ckpt_dir,) if ckpt_dir else (),
    )


def build_onnx(
    path: Path, out_dir: Path, hw_cfg=None, sim_cfg=None, variant=None, input_precision=None
) -> Report:
    """The whole flow for a user's QONNX file (``input_precision``: see
    :func:`onnx_export_stage`)."""
    from sim.config import SimConfig  # noqa: PLC0415

    sim_cfg = sim_cfg or SimConfig()
    return build_and_verify(
        lambda d: onnx_export_stage(
            path, d, sim_cfg.n_vectors, sim_cfg.seed, variant, input_precision
        ),
        out_dir,
        hw_cfg,
        sim_cfg,
        {"input_precision": input_precision} if input_precision else None,
        inputs=(Path(path),),
    )
