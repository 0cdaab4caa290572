"""Corner vectors and coverage: do the vectors drive every accumulator to its extremes?

Random vectors (half of them saturating) do not show that the accumulator widths FINN's
MinimizeAccumulatorWidth chose are enough: the vector that drives one accumulator to its extreme
might never be drawn. This module works on the integer graph the RTL implements
(``hw/intermediate/*_export_rtl.onnx``: MVAU_rtl with ``noActivation``, Thresholding_rtl, and
FIFOs / width converters that only move data):

* :func:`corner_vectors`: for every MVAU output channel, one input vector that drives its
  accumulator to the largest and one to the smallest value reachable. For the first MVAU this is
  exact (each input at the end of its range that the weight's sign favours); for later MVAUs the
  inputs are steered through the earlier layers by coordinate ascent over the input elements
  (as far as it can be steered, not a proof of the global extreme).
* :func:`coverage`: over the vectors of a run, each MVAU's accumulator extremes reached vs the
  bound its weights allow and the range of the width FINN chose (an overflow is an
  :class:`~qphy.errors.AccumulatorOverflowError` in the verdict), and per Thresholding layer the
  fraction of thresholds crossed in both directions between consecutive vectors.

Graphs with other layers (convolution windows, pooling) are reported as unsupported, by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Layers that only move a stream's elements in order (no arithmetic).
_PASS = frozenset({"StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl"})
#: Candidate values per input element tried in one coordinate-ascent step, and passes over the
#: input elements. Measured on the default FullyCon (5 MVAUs, 1640 corner vectors, loaded
#: 2-core machine): 1 pass x 5 values 14 s, 2 x 5 37 s for extremes within 5 % of each other.
_GRID = 5
_SWEEPS = 1


@dataclass(frozen=True)
class Layer:
    """One arithmetic layer of the integer graph."""

    name: str
    kind: str  # "mvau" | "thresholds"
    params: np.ndarray  # W (MW, MH) or T (channels or 1, steps)
    lo: int  # accumulator range of the width FINN chose (MVAU) / output bias (thresholds)
    hi: int
    dtype: str


def _range(dtype: str) -> tuple[int, int]:
    from qonnx.core.datatype import DataType  # noqa: PLC0415

    dt = DataType[dtype]
    return int(dt.min()), int(dt.max())


def load_layers(hw_dir: Path) -> tuple[list[Layer], tuple[int, int], list[str]]:
    """(layers, input range, unsupported 'name (op)') of the RTL graph in ``hw_dir``."""
    from qonnx.core.modelwrapper import ModelWrapper  # noqa: PLC0415
    from qonnx.custom_op.registry import getCustomOp  # noqa: PLC0415

    found = sorted(Path(hw_dir, "intermediate").glob("*_export_rtl.onnx"))
    if not found:
        return [], (0, 0), ["no intermediate/*_export_rtl.onnx"]
    model = ModelWrapper(str(found[-1]))
    layers, unsupported = [], []
    for node in model.graph.node:
        if node.op_type in _PASS:
            continue
        if node.op_type not in ("MVAU_rtl", "Thresholding_rtl"):
            unsupported.append(f"{node.name} ({node.op_type})")
            continue
        inst = getCustomOp(node)
        if node.op_type == "MVAU_rtl" and model.get_initializer(node.input[1]) is None:
            unsupported.append(f"{node.name} (MVAU_rtl with dynamic weights)")  # hw/dynamic_matmul
            continue
        if node.op_type == "MVAU_rtl" and inst.get_nodeattr("noActivation") == 1:
            lo, hi = _range(inst.get_nodeattr("accDataType"))
            w = model.get_initializer(node.input[1]).astype(np.float64)
            layers.append(Layer(node.name, "mvau", w, lo, hi, inst.get_nodeattr("accDataType")))
        elif node.op_type == "Thresholding_rtl":
            t = model.get_initializer(node.input[1]).astype(np.float64)
            bias = int(inst.get_nodeattr("ActVal"))
            layers.append(Layer(node.name, "thresholds", t, bias, bias, ""))
        else:
            unsupported.append(f"{node.name} ({node.op_type})")
    in_range = _range(model.get_tensor_datatype(model.graph.input[0].name).name)
    return layers, in_range, unsupported


def run_layers(layers: list[Layer], x: np.ndarray, upto: int | None = None):
    """Integer execution: (output, {mvau name: accumulators}, {threshold name: counts}).

    float64 holds these sums exactly (|acc| << 2**53)."""
    h = np.asarray(x, dtype=np.float64)
    accs, tins = {}, {}
    for layer in layers[: None if upto is None else upto + 1]:
        if layer.kind == "mvau":
            h = h @ layer.params
            accs[layer.name] = h
        else:
            tins[layer.name] = threshold_counts(h, layer.params)
            h = layer.lo + tins[layer.name]
    return h, accs, tins


def threshold_counts(acc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Thresholds at or below each value, per channel: ``sum(acc >= T[c])`` (FINN's
    MultiThreshold), by binary search in each channel's ascending thresholds."""
    counts = np.empty(acc.shape, dtype=np.int64)
    for c in range(acc.shape[1]):
        counts[:, c] = np.searchsorted(t[c if len(t) > 1 else 0], acc[:, c], side="right")
    return counts


def corner_vectors(layers: list[Layer], in_range: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Input vectors driving each MVAU accumulator to its max and min (see the module doc)."""
    lo, hi = in_range
    mvaus = [i for i, layer in enumerate(layers) if layer.kind == "mvau"]
    if not mvaus:
        return np.zeros((0, 0), dtype=np.int64)
    n_in = layers[mvaus[0]].params.shape[0]
    grid = np.unique(np.round(np.linspace(lo, hi, _GRID))).astype(np.float64)
    rng = np.random.default_rng(seed)
    out = []
    for idx in mvaus:
        w = layers[idx].params
        n_out = w.shape[1]
        signs = np.concatenate([np.ones(n_out), -np.ones(n_out)])
        chans = np.concatenate([np.arange(n_out), np.arange(n_out)])
        if idx == mvaus[0]:  # exact: each input at the end its weight favours
            pos = (w[:, chans] * signs) > 0
            out.append(np.where(pos.T, hi, lo).astype(np.int64))
            continue
        x = rng.integers(lo, hi + 1, (len(chans), n_in)).astype(np.float64)
        for _ in range(_SWEEPS):
            for i in range(n_in):
                cand = np.repeat(x[:, None, :], len(grid), axis=1)
                cand[:, :, i] = grid[None, :]
                _, accs, _ = run_layers(layers, cand.reshape(-1, n_in), upto=idx)
                acc = accs[layers[idx].name].reshape(len(chans), len(grid), -1)
                score = acc[np.arange(len(chans)), :, chans] * signs[:, None]
                x[:, i] = grid[np.argmax(score, axis=1)]
        out.append(x.astype(np.int64))
    return np.concatenate(out)


#: Vectors per chunk of :func:`coverage` (bounds memory: vectors x channels x thresholds).
CHUNK = 16_384


def coverage(
    layers: list[Layer],
    in_range,
    inputs: np.ndarray,
    n_corner: int,
    expected: np.ndarray | None = None,
) -> dict:
    """The report's ``coverage`` block for the vectors ``inputs`` (stream order), in chunks.

    With ``expected`` (the golden integers), the integer model is checked against them first:
    ``model_agrees`` false means its figures describe another graph and must not be trusted.
    """
    agrees = True
    mins: dict[str, np.ndarray] = {}
    maxs: dict[str, np.ndarray] = {}
    up: dict[str, np.ndarray] = {}
    down: dict[str, np.ndarray] = {}
    last: dict[str, np.ndarray] = {}
    for start in range(0, len(inputs), CHUNK):
        out, accs, tins = run_layers(layers, inputs[start : start + CHUNK])
        if expected is not None:
            want = expected[start : start + CHUNK]
            agrees = agrees and out.shape == want.shape and np.array_equal(out, want)
        for name, a in accs.items():
            lo, hi = a.min(axis=0), a.max(axis=0)
            mins[name] = lo if name not in mins else np.minimum(mins[name], lo)
            maxs[name] = hi if name not in maxs else np.maximum(maxs[name], hi)
        for layer in layers:
            if layer.kind != "thresholds":
                continue
            name = layer.name
            # Threshold s of a channel is crossed upwards between consecutive vectors a, b
            # when count(a) <= s < count(b): mark those index ranges with difference arrays.
            c = tins[name]
            if name in last:  # the pair across the chunk boundary
                c = np.concatenate([last[name][None], c])
            steps = layer.params.shape[1]
            if name not in up:
                up[name] = np.zeros((c.shape[1], steps + 1), dtype=np.int64)
                down[name] = np.zeros_like(up[name])
            a, b = c[:-1], c[1:]
            base = np.arange(c.shape[1]) * (steps + 1)  # flat index of (channel, 0)
            size = up[name].size
            for diff, lo_i, hi_i, sel in ((up[name], a, b, b > a), (down[name], b, a, a > b)):
                start = (lo_i + base)[sel]
                stop = (hi_i + base)[sel]
                flat = np.bincount(start, minlength=size) - np.bincount(stop, minlength=size)
                diff += flat.reshape(diff.shape)
            last[name] = c[-1]
    lo, hi = in_range
    block: dict = {
        "corner_vectors": int(n_corner),
        "model_agrees": agrees,
        "accumulators": {},
        "thresholds": {},
    }
    x_lo, x_hi = float(lo), float(hi)  # the input range of the next layer
    for layer in layers:
        name = layer.name
        if layer.kind == "mvau":
            # The bound the weights allow over the input's range (what FINN sizes for).
            w = layer.params
            top = np.maximum(w * x_hi, w * x_lo).sum(axis=0)
            bot = np.minimum(w * x_hi, w * x_lo).sum(axis=0)
            reached = [int(mins[name].min()), int(maxs[name].max())]
            block["accumulators"][name] = {
                "acc_datatype": layer.dtype,
                "acc_range": [layer.lo, layer.hi],
                "bound": [int(bot.min()), int(top.max())],
                "reached": reached,
                "overflow": bool(reached[0] < layer.lo or reached[1] > layer.hi),
                "channels_max_at_bound": round(float(np.mean(maxs[name] == top)), 4),
                "channels_min_at_bound": round(float(np.mean(mins[name] == bot)), 4),
            }
        else:
            x_lo, x_hi = float(layer.lo), float(layer.lo + layer.params.shape[1])
            if name in up:
                crossed_up = np.cumsum(up[name], axis=1)[:, :-1] > 0
                crossed_down = np.cumsum(down[name], axis=1)[:, :-1] > 0
                both = crossed_up & crossed_down
            else:
                both = np.zeros(0, dtype=bool)
            block["thresholds"][name] = {
                "crossed_both_ways": int(both.sum()),
                "thresholds": int(both.size),
                "fraction": round(float(both.mean()), 4) if both.size else 0.0,
            }
    return block


def overflows(block: dict) -> list[str]:
    """'name: reached [lo, hi] outside DTYPE [lo, hi]' for every accumulator that overflowed."""
    return [
        f"{name}: reached {a['reached']} outside {a['acc_datatype']} {a['acc_range']}"
        for name, a in block.get("accumulators", {}).items()
        if a["overflow"] and block.get("model_agrees")
    ]


#: File in the sim dir recording how many corner vectors the verdict's vectors end with.
CORNERS_FILE = "corner_vectors.json"


#: Sub-directory of the sim dir holding the corner vectors (vectors_in/expected.npy).
CORNER_DIR = "corners"


def corner_golden(golden, hw_dir: Path, host_spec, sim_dir: Path, seed: int = 0):
    """The corner vectors as a golden set of their own (model inputs, QONNX outputs), or None;
    the count and any reason for none go to ``sim_dir/corner_vectors.json``.

    The verdict simulates them after the run's vectors and judges them apart (the vectors a
    user asked for, and the export's golden vectors the board driver re-derives, stay as they
    are). The stream integers are mapped back to model inputs (``int * scale`` in the model's
    shape) and must quantize back to themselves through the host, else none are made."""
    import json  # noqa: PLC0415

    from qphy import host  # noqa: PLC0415
    from qphy.reference import GoldenSet, execute_batch, load_reference  # noqa: PLC0415

    def record(count: int, note: str) -> None:
        Path(sim_dir).mkdir(parents=True, exist_ok=True)
        (Path(sim_dir) / CORNERS_FILE).write_text(json.dumps({"count": count, "note": note}))

    layers, in_range, unsupported = load_layers(hw_dir)
    if unsupported or not layers:
        record(0, "unsupported layers: " + ", ".join(unsupported or ["no MVAU"]))
        return None
    ints = corner_vectors(layers, in_range, seed)
    flat = ints.copy()
    if host_spec.input_perm is not None:
        flat[:, np.asarray(host_spec.input_perm)] = ints
    shape = tuple(host_spec.input_shape)
    scale = np.asarray(host_spec.input_quant.scale, dtype=np.float64)
    floats = (flat.reshape((len(ints), *shape)) * scale).astype(np.float32)
    if not np.array_equal(host.stream_inputs(floats, host_spec), ints):
        record(0, "corner vectors do not survive the host's input quantizer")
        return None
    outs = execute_batch(load_reference(golden.model_path), floats)
    record(len(ints), "")
    return GoldenSet(
        golden.model_path,
        floats.reshape((len(ints), *golden.inputs.shape[1:])),
        outs.reshape(len(ints), *golden.outputs.shape[1:]),
        golden.variant,
    )
