"""qphy's own RTL stream layers, each alone in Verilator under random source and sink stalls.

One Verilator build per layer holds all of that layer's configurations (widths 1..8, signed and
unsigned, odd channel counts, single-element frames) as separate instances with their own
streams; each output is compared with numpy's reference of the layer in stream order.
A fork feeding a concat through a too-shallow branch FIFO must fail as a DeadlockError naming
the FIFO's stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.graph_stitch import (
    boundary_streams,
    branch_fifo_depths,
    generate_graph_top,
    insert_branch_fifos,
)
from hw.layers import hdl
from hw.layers.wrapper import RTL_DIR
from hw.stitch import module_ports, node_instance
from qphy.contracts import NodeSpec
from qphy.errors import DeadlockError
from tests.tools import tool_or_skip

pytestmark = pytest.mark.rtl


@pytest.fixture(autouse=True)
def _verilator():
    """A skip locally, a failure in CI (as tests/sim's verilator fixture)."""
    return tool_or_skip("verilator", "run `make setup`")


RNG_SEED = 20


def _pad8(bits: int) -> int:
    return max(8, -(-bits // 8) * 8)


def pack(vals: np.ndarray, bits: int) -> np.ndarray:
    """(beats, lanes) integers -> one uint64 word per beat, lane 0 in the low bits."""
    vals = np.asarray(vals, dtype=np.int64) & ((1 << bits) - 1)
    words = np.zeros(len(vals), dtype=np.uint64)
    for k in range(vals.shape[1]):
        words |= vals[:, k].astype(np.uint64) << np.uint64(k * bits)
    return words


def unpack(words: np.ndarray, lanes: int, bits: int, signed: bool) -> np.ndarray:
    w = np.asarray(words, dtype=np.uint64)
    out = np.stack(
        [
            ((w >> np.uint64(k * bits)) & np.uint64((1 << bits) - 1)).astype(np.int64)
            for k in range(lanes)
        ],
        axis=1,
    )
    if signed:
        out = np.where(out >= 1 << (bits - 1), out - (1 << bits), out)
    return out


def rand_ints(rng, shape, bits: int, signed: bool) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, size=shape)


class Bench:
    """Layers (wrapper SV, stream widths) as independent instances of one top."""

    def __init__(self):
        self.nodes: list[NodeSpec] = []
        self.sources: dict[str, str] = {}

    def add(self, name: str, sv: str, in_widths: list[int], out_widths: list[int]) -> None:
        self.sources[name] = sv
        self.nodes.append(
            NodeSpec(
                name=name,
                op_type="bench",
                module=name,
                in_width_bits=in_widths[0],
                out_width_bits=out_widths[0],
                files=[],
                inputs=[f"{name}_i{k}" for k in range(len(in_widths))],
                outputs=[f"{name}_o{k}" for k in range(len(out_widths))],
                in_widths=in_widths,
                out_widths=out_widths,
            )
        )

    def build(self, tmp_path, fifos: dict | None = None):
        from sim.stream_bench import build_stream_bench

        nodes = insert_branch_fifos(self.nodes, fifos or {})
        src = tmp_path / "src"
        src.mkdir()
        for name, sv in self.sources.items():
            (src / f"{name}.sv").write_text(sv)
        for f in sorted(RTL_DIR.glob("*.sv")):
            self.sources[f.stem] = f.read_text()
        top = generate_graph_top(nodes, self.sources, "bench_top", node_instance)
        (src / "bench_top.sv").write_text(top)
        files = [*sorted(RTL_DIR.glob("*.sv")), *sorted(p for p in src.glob("*.sv"))]
        files = [f for f in files if f.name != "bench_top.sv"] + [src / "bench_top.sv"]
        ins, outs = boundary_streams(nodes)
        return build_stream_bench(files, "bench_top", len(ins), len(outs), tmp_path / "build")


def _run(bench, inputs, want, tmp_path, seed=1, **kw):
    from sim.stream_bench import run_stream_bench

    return run_stream_bench(bench, inputs, want, tmp_path / f"run{seed}", seed=seed, **kw)


def _check_cycles(bench, ins, want, tmp_path, model_last: list[int]) -> None:
    """Without stalls every output's last beat leaves exactly when the layer's cycle model
    says (cycles from the first input handshake)."""
    res = _run(bench, ins, want, tmp_path, seed=99, source_pause_prob=0.0, sink_pause_prob=0.0)
    assert res.last_beat_cycles == model_last


def test_wrapper_ports_are_finn_style():
    sv = hdl.add_sv("add_x", 3, 4, True, 5, False, 7)
    ports = module_ports(sv, "add_x")
    assert ports["in1_V_TDATA"] == "input" and ports["out0_V_TREADY"] == "input"


# (pe, bits, n_out, beats): widths 1..8, odd fan-out, a single beat.
FORK_CASES = [(1, 1, 2, 5), (3, 5, 3, 7), (2, 8, 2, 1), (1, 7, 4, 9)]


def test_fork(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    b = Bench()
    for c, (pe, bits, n_out, _) in enumerate(FORK_CASES):
        b.add(
            f"fork{c}",
            hdl.fork_sv(f"fork{c}", pe, bits, n_out),
            [_pad8(pe * bits)],
            [_pad8(pe * bits)] * n_out,
        )
    bench = b.build(tmp_path)
    for seed in (1, 2):
        ins, want, ref = [], [], []
        for pe, bits, n_out, beats in FORK_CASES:
            x = rand_ints(rng, (beats * 3, pe), bits, False)
            ins.append(pack(x, bits))
            want += [len(x)] * n_out
            ref += [x] * n_out
        res = _run(bench, ins, want, tmp_path, seed=seed)
        if seed == 1:  # cycle model: one beat per cycle, latency 0
            _check_cycles(bench, ins, want, tmp_path, [w - 1 for w in want])
        k = 0
        for pe, bits, n_out, _ in FORK_CASES:
            for _ in range(n_out):
                assert np.array_equal(unpack(res.outputs[k], pe, bits, False), ref[k])
                k += 1


# (pe, a_bits, a_signed, b_bits, b_signed, out_bits, beats)
ADD_CASES = [
    (1, 1, False, 1, False, 2, 4),
    (3, 4, True, 5, False, 7, 5),
    (2, 8, True, 8, True, 9, 1),
    (5, 2, True, 3, True, 4, 3),
]


def test_add(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    b = Bench()
    for c, (pe, ab, asg, bb, bsg, ob, _) in enumerate(ADD_CASES):
        b.add(
            f"add{c}",
            hdl.add_sv(f"add{c}", pe, ab, asg, bb, bsg, ob),
            [_pad8(pe * ab), _pad8(pe * bb)],
            [_pad8(pe * ob)],
        )
    bench = b.build(tmp_path)
    ins, want, ref = [], [], []
    for pe, ab, asg, bb, bsg, _, beats in ADD_CASES:
        x, y = rand_ints(rng, (beats * 4, pe), ab, asg), rand_ints(rng, (beats * 4, pe), bb, bsg)
        ins += [pack(x, ab), pack(y, bb)]
        want.append(len(x))
        ref.append(x + y)
    res = _run(bench, ins, want, tmp_path)
    _check_cycles(bench, ins, want, tmp_path, list(want))  # one beat per cycle, latency 1
    for (pe, _, asg, _, bsg, ob, _), r, out in zip(ADD_CASES, ref, res.outputs, strict=True):
        assert np.array_equal(unpack(out, pe, ob, asg or bsg), r)


# (simd, in_bits, in_signed, channels per input, pixels)
CONCAT_CASES = [
    (1, [3, 3], [False, False], [3, 5], 4),
    (2, [4, 6, 2], [True, False, True], [2, 4, 6], 3),
    (1, [8], [True], [1], 1),
    (3, [1, 5], [False, True], [3, 9], 2),
]


def _concat_out(bits, signed):
    return max(b + (1 if any(signed) and not s else 0) for b, s in zip(bits, signed, strict=True))


def test_concat_and_split(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    b = Bench()
    for c, (simd, bits, sg, chans, _) in enumerate(CONCAT_CASES):
        ob = _concat_out(bits, sg)
        folds = [ch // simd for ch in chans]
        b.add(
            f"cat{c}",
            hdl.concat_sv(f"cat{c}", simd, bits, sg, folds, ob),
            [_pad8(simd * x) for x in bits],
            [_pad8(simd * ob)],
        )
        b.add(
            f"split{c}",
            hdl.split_sv(f"split{c}", simd, ob, folds),
            [_pad8(simd * ob)],
            [_pad8(simd * ob)] * len(folds),
        )
    bench = b.build(tmp_path)
    ins, want, refs = [], [], []
    for simd, bits, sg, chans, px in CONCAT_CASES:
        ob = _concat_out(bits, sg)
        parts = [rand_ints(rng, (px, ch), bw, s) for bw, s, ch in zip(bits, sg, chans, strict=True)]
        ins += [pack(p.reshape(-1, simd), bw) for p, bw in zip(parts, bits, strict=True)]
        cat = np.concatenate(parts, axis=1)
        want.append(cat.size // simd)
        refs.append(("cat", cat.reshape(-1, simd), ob, any(sg)))
        ins.append(pack(cat.reshape(-1, simd), ob))
        want += [p.size // simd for p in parts]
        refs += [("split", p.reshape(-1, simd), ob, any(sg)) for p in parts]
    res = _run(bench, ins, want, tmp_path)
    last = []  # concat: its beats in order; split: output j's last beat of the last pixel
    for simd, _, _, chans, px in CONCAT_CASES:
        folds = [c // simd for c in chans]
        last.append(px * sum(folds) - 1)
        last += [(px - 1) * sum(folds) + sum(folds[: j + 1]) - 1 for j in range(len(folds))]
    _check_cycles(bench, ins, want, tmp_path, last)
    for (_, r, ob, signed), out in zip(refs, res.outputs, strict=True):
        assert np.array_equal(unpack(out, r.shape[1], ob, signed), r)


# (pe, bits, signed, channels, kernel elements, output pixels)
POOL_CASES = [
    (1, 1, False, 3, 4, 2),
    (2, 4, True, 6, 9, 2),
    (3, 8, True, 3, 2, 3),
    (1, 5, False, 1, 1, 1),
]


def test_maxpool(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    b = Bench()
    for c, (pe, bits, sg, _, k, _) in enumerate(POOL_CASES):
        b.add(
            f"pool{c}",
            hdl.pool_sv(f"pool{c}", pe, bits, sg, k),
            [_pad8(pe * bits)],
            [_pad8(pe * bits)],
        )
    bench = b.build(tmp_path)
    ins, want, refs = [], [], []
    for pe, bits, sg, ch, k, px in POOL_CASES:
        # The depthwise window generator's order: (pixel, channel fold, window element, PE).
        x = rand_ints(rng, (px, ch // pe, k, pe), bits, sg)
        ins.append(pack(x.reshape(-1, pe), bits))
        refs.append(x.max(axis=2).reshape(-1, pe))
        want.append(px * ch // pe)
    res = _run(bench, ins, want, tmp_path)
    # One input beat per cycle; the registered maximum leaves one cycle after its window.
    _check_cycles(bench, ins, want, tmp_path, [len(x) for x in ins])
    for (pe, bits, sg, *_), r, out in zip(POOL_CASES, refs, res.outputs, strict=True):
        assert np.array_equal(unpack(out, pe, bits, sg), r)


# (pe, in_bits, signed, channels, pixels)
ACC_CASES = [(1, 1, False, 3, 5), (2, 4, True, 6, 9), (3, 8, True, 3, 1), (1, 7, False, 1, 16)]


def test_global_acc_pool(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    b = Bench()
    for c, (pe, bits, sg, ch, px) in enumerate(ACC_CASES):
        ob = bits + int(np.ceil(np.log2(px))) + 1
        b.add(
            f"gap{c}",
            hdl.accpool_sv(f"gap{c}", pe, bits, ob, sg, ch // pe, px),
            [_pad8(pe * bits)],
            [_pad8(pe * ob)],
        )
    bench = b.build(tmp_path)
    ins, want, refs = [], [], []
    for pe, bits, sg, ch, px in ACC_CASES:
        frames = 2
        x = rand_ints(rng, (frames, px, ch), bits, sg)
        ins.append(pack(x.reshape(-1, pe), bits))
        refs.append(x.sum(axis=1).reshape(-1, pe))
        want.append(frames * ch // pe)
    res = _run(bench, ins, want, tmp_path)
    # One input beat per cycle; each sum leaves one cycle after its last-pixel beat.
    _check_cycles(bench, ins, want, tmp_path, [len(x) for x in ins])
    for (pe, bits, sg, _, px), r, out in zip(ACC_CASES, refs, res.outputs, strict=True):
        ob = bits + int(np.ceil(np.log2(px))) + 1
        assert np.array_equal(unpack(out, pe, ob, sg), r)


def _fork_concat(tmp_path, folds: int, depth: int | None):
    """x -> fork -> (branch 0, branch 1) -> concat: branch 1 holds a pixel's branch-0 beats."""
    bits = 4
    b = Bench()
    b.add("fk", hdl.fork_sv("fk", 1, bits, 2), [8], [8, 8])
    b.add(
        "cat",
        hdl.concat_sv("cat", 1, [bits, bits], [False, False], [folds, folds], bits),
        [8, 8],
        [8],
    )
    # Wire the fork's outputs into the concat (one graph, not two instances).
    fk, cat = b.nodes
    import dataclasses

    b.nodes = [fk, dataclasses.replace(cat, inputs=list(fk.outputs))]
    analytic = branch_fifo_depths(
        b.nodes,
        {"fk": 0, "cat": 0},
        {"fk_o0": folds * 4, "fk_o1": folds * 4},
        folds * 8,
        concat_folds={"cat": [folds, folds]},
    )
    fifos = {("cat", 1): depth if depth is not None else analytic[("cat", 1)]}
    bench = b.build(tmp_path, fifos)
    x = np.random.default_rng(3).integers(0, 16, size=(folds * 4, 1))
    res = _run(bench, [pack(x, bits)], [2 * len(x)], tmp_path, stall_limit_cycles=30_000)
    got = unpack(res.outputs[0], 1, bits, False).reshape(4, 2 * folds)
    assert np.array_equal(got, np.concatenate([x.reshape(4, folds)] * 2, axis=1))
    return analytic[("cat", 1)]


def test_branch_fifo_analytic_depth_passes(tmp_path):
    assert _fork_concat(tmp_path, folds=5, depth=None) == 5 + 2


def test_too_shallow_branch_fifo_is_a_named_deadlock(tmp_path):
    with pytest.raises(
        DeadlockError, match=r"cat_in1_fifo \(into branch FIFO cat_fifo1, depth 2, full\)"
    ):
        _fork_concat(tmp_path, folds=5, depth=2)
