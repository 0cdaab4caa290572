"""cocotb bench of one MVU (finn-rtllib mvu_vvu_axi) under long output stalls.

The wrapper (written by test_mvu_queue.py) ties the weight stream to a constant, always-valid
matrix, so with SIMD = MW and PE = MH the MVU takes one input vector and issues one result per
cycle. Inputs stream in back to back while the sink stalls for long random runs: every result
in the core's pipeline must land in the output queue. The job file (plusarg ``+qphy_job``) names
the inputs, the expected results and where the received results go.
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
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from qphy.contracts import StreamSpec
from qphy.host import beats_to_words, pack_beats, unpack_beats, words_to_beats


def _stall_runs(rng: random.Random):
    """Runs of 1..4 ready cycles and 12..40 stalled cycles: long enough to fill any queue."""
    while True:
        yield from itertools.repeat(False, rng.randint(1, 4))
        yield from itertools.repeat(True, rng.randint(12, 40))


@cocotb.test()
async def mvu_queue_under_stalls(dut):
    job = json.loads(Path(cocotb.plusargs["qphy_job"]).read_text())
    inputs, expected = np.array(job["inputs"]), np.array(job["expected"])
    cocotb.start_soon(Clock(dut.ap_clk, 5, unit="ns").start())
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n, False, byte_lanes=1
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n, False, byte_lanes=1
    )
    for log in (source.log, sink.log, logging.getLogger("cocotbext.axi")):
        log.setLevel(logging.WARNING)
    sink.set_pause_generator(_stall_runs(random.Random(job["seed"])))
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 8)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 32)  # DSP startup recovery (100 ns)
    n_in = inputs.shape[1]
    s_in = StreamSpec("X", job["act_bits"], True, n_in, 1, job["act_bits"] * n_in)
    for word in beats_to_words(pack_beats(inputs, s_in)):
        source.send_nowait(AxiStreamFrame([word]))
    words: list[int] = []
    for _ in range(40 * len(inputs) + 200):
        await ClockCycles(dut.ap_clk, 1)
        while not sink.empty():
            words.extend(sink.recv_nowait().tdata)
        if len(words) >= len(expected):
            break
    s_out = StreamSpec("X", job["accu_bits"], True, job["pe"], 1, job["accu_bits"] * job["pe"])
    got = unpack_beats(words_to_beats(words, s_out), s_out)
    Path(job["results"]).write_text(json.dumps({"received": got.tolist()}))
    assert got.shape == expected.shape and np.array_equal(got, expected)
