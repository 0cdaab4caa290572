"""cocotb testbench of the stitched dataflow top: driver, monitor, reference, checker.

Parameters come from a :class:`~qphy.contracts.SimJob` file named by the plusarg
``+qphy_job=<path>`` (written by :mod:`sim.verdict`): integer input vectors, their expected
integer outputs, stream layouts, backpressure probabilities and the seed. Three phases:

1. latency: one frame into the idle pipeline, no backpressure; cycles from its first input
   handshake to its last output handshake;
2. throughput: a burst of frames, no backpressure; steady-state spacing of frame completions;
3. verdict: every vector under seeded random source and sink backpressure (cocotbext-axi pause
   generators, as in verilog-axis' axis_fifo bench); the checker compares every output frame in
   order, so a lost, duplicated or reordered frame is a mismatch.

Results go to the job's ``results`` (JSON) and ``actual`` (.npy) paths, written before the test
passes or fails.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from qphy.contracts import SimJob
from qphy.host import beats_to_words, pack_beats, unpack_beats, words_to_beats


class Monitor:
    """Counts clock cycles and records both streams' handshakes (cycle, data)."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.in_cycles: list[int] = []
        self.out: list[tuple[int, int]] = []

    async def run(self) -> None:
        clk, d = self.dut.ap_clk, self.dut
        sv, sr, mv, mr, md = (
            d.s_axis_tvalid,
            d.s_axis_tready,
            d.m_axis_tvalid,
            d.m_axis_tready,
            (d.m_axis_tdata),
        )
        while True:
            await RisingEdge(clk)
            self.cycle += 1
            if sv.value and sr.value:
                self.in_cycles.append(self.cycle)
            if mv.value and mr.value:
                self.out.append((self.cycle, int(md.value)))


def _pauses(rng: random.Random, prob: float):
    """Infinite seeded pause pattern: True (stall this cycle) with probability ``prob``."""
    while True:
        yield rng.random() < prob


class Bench:
    def __init__(self, dut, job: SimJob):
        self.dut, self.job = dut, job
        self.inp, self.outp = job.input, job.output
        bus_in = AxiStreamBus.from_prefix(dut, "s_axis")
        bus_out = AxiStreamBus.from_prefix(dut, "m_axis")
        self.source = AxiStreamSource(
            bus_in, dut.ap_clk, dut.ap_rst_n, reset_active_level=False, byte_lanes=1
        )
        self.sink = AxiStreamSink(
            bus_out, dut.ap_clk, dut.ap_rst_n, reset_active_level=False, byte_lanes=1
        )
        for name in ("cocotbext.axi", self.source.log.name, self.sink.log.name):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.mon = Monitor(dut)
        self.beats_out = self.outp.beats_per_frame

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 8)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 8)

    def send(self, vectors: np.ndarray) -> None:
        beats = self.inp.beats_per_frame
        words = beats_to_words(pack_beats(vectors, self.inp))
        for k in range(len(vectors)):
            self.source.send_nowait(AxiStreamFrame(words[k * beats : (k + 1) * beats]))

    async def wait_outputs(self, n_beats: int, stall_limit: int) -> bool:
        """Wait until the monitor saw n_beats output beats; False on no progress (deadlock)."""
        last, idle = len(self.mon.out), 0
        while len(self.mon.out) < n_beats:
            await ClockCycles(self.dut.ap_clk, 64)
            while not self.sink.empty():
                self.sink.recv_nowait()
            idle = 0 if len(self.mon.out) != last else idle + 64
            last = len(self.mon.out)
            if idle > stall_limit:
                return False
        return True

    def unpack(self, words: list[int], n: int) -> np.ndarray:
        frames = unpack_beats(words_to_beats(words, self.outp), self.outp, self.job.n_out_elems)
        return frames.reshape(n, self.job.n_out_elems)


def stream_states(dut) -> list[dict]:
    """Handshake state of the top's streams (``NAME_tvalid``/``NAME_tready`` pairs), as the
    compiled harness reports it at a deadlock."""
    handles = {h._name.rsplit(".", 1)[-1]: h for h in dut}
    states = []
    for name, valid in sorted(handles.items()):
        base = name.removesuffix("_tvalid")
        if base != name and f"{base}_tready" in handles:
            ready = handles[f"{base}_tready"]
            states.append({"name": base, "valid": int(valid.value), "ready": int(ready.value)})
    return states


@cocotb.test()
async def dataflow_verdict(dut):
    """Latency, throughput and the bit-exact verdict under backpressure."""
    job = SimJob.read(Path(cocotb.plusargs["qphy_job"]))
    inputs = np.load(job.inputs)
    expected = np.load(job.expected)
    bench = Bench(dut, job)
    cocotb.start_soon(Clock(dut.ap_clk, job.clock_period_ns, unit="ns").start())
    bench.source.set_pause_generator(itertools.repeat(False))
    bench.sink.set_pause_generator(itertools.repeat(False))
    await bench.reset()
    mon_task = cocotb.start_soon(bench.mon.run())
    stall = int(job.stall_limit_cycles)
    results: dict = {"deadlock": False}

    # 1. latency on an idle pipeline
    bench.send(inputs[:1])
    ok = await bench.wait_outputs(bench.beats_out, stall)
    if not ok:
        results.update(deadlock_phase="latency", streams=stream_states(dut))
    results["latency_cycles"] = (
        bench.mon.out[bench.beats_out - 1][0] - bench.mon.in_cycles[0] if ok else None
    )
    await ClockCycles(dut.ap_clk, 16)

    # 2. steady-state throughput: a burst without backpressure
    n_burst = min(int(job.n_burst), len(inputs))
    base = len(bench.mon.out)
    bench.send(inputs[:n_burst])
    burst_ok = ok and await bench.wait_outputs(base + n_burst * bench.beats_out, stall)
    if ok and not burst_ok:
        results.update(deadlock_phase="throughput", streams=stream_states(dut))
    ok = burst_ok
    if ok:
        ends = [bench.mon.out[base + (k + 1) * bench.beats_out - 1][0] for k in range(n_burst)]
        half = n_burst // 2
        results["cycles_per_frame"] = (ends[-1] - ends[half]) / max(1, n_burst - 1 - half)
    await ClockCycles(dut.ap_clk, 16)

    # 3. verdict: all vectors under random backpressure on both sides. The cycle monitor is
    # stopped (it costs a Python call per cycle) and the sink's frames are the output record.
    mon_task.cancel()
    while not bench.sink.empty():
        bench.sink.recv_nowait()
    rng = random.Random(int(job.seed))
    bench.source.set_pause_generator(_pauses(rng, float(job.source_pause_prob)))
    bench.sink.set_pause_generator(_pauses(rng, float(job.sink_pause_prob)))
    n = len(inputs)
    bench.send(inputs)
    words: list[int] = []
    period_ns = float(job.clock_period_ns)
    try:
        while ok and len(words) < n * bench.beats_out:
            frame = await with_timeout(bench.sink.recv(), stall * period_ns, "ns")
            words.extend(frame.tdata)
    except SimTimeoutError:
        ok = False
        results.update(deadlock_phase="verdict", streams=stream_states(dut))
    await ClockCycles(dut.ap_clk, 4 * bench.beats_out + 32)
    while not bench.sink.empty():
        words.extend(bench.sink.recv_nowait().tdata)
    results["deadlock"] = not ok
    results["extra_beats"] = max(0, len(words) - n * bench.beats_out)
    n_done = min(n, len(words) // bench.beats_out)
    actual = bench.unpack(words[: n_done * bench.beats_out], n_done)
    np.save(job.actual, actual)
    # Checker: in-order comparison with the reference (golden integers).
    mism = int(np.sum(np.any(actual != expected[:n_done], axis=1))) + (n - n_done)
    results.update(
        {
            "vectors_sent": n,
            "vectors_received": n_done,
            "mismatches": mism,
            "sim_cycles": int(get_sim_time("ns") / period_ns),
        }
    )
    Path(job.results).write_text(json.dumps(results))
    assert ok, "no output progress: deadlock or lost data"
    assert results["extra_beats"] == 0, f"{results['extra_beats']} unexpected extra output beats"
    assert mism == 0, f"{mism} mismatching vectors"
