"""A compiled Verilator bench for tops with several AXI streams (qphy's layer and graph benches).

:func:`build_stream_bench` verilates a top made by :func:`hw.graph_stitch.generate_graph_top`
(ports ``s_axis[_k]_t*`` / ``m_axis[_k]_t*``, every stream at most 64 bits wide) with a C++ main
generated for its ports; :func:`run_stream_bench` feeds each input stream its words under seeded
random source stalls (a presented beat is never withdrawn), drops each sink's ready at random,
and collects every output stream's words. No handshake on any port for ``stall_limit`` cycles
while outputs are missing is a deadlock: :class:`~qphy.errors.DeadlockError` names the stalled
streams the top's monitor reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.graph_stitch import blocked_streams
from hw.toolchain import require_tool, tool_env
from qphy.errors import DeadlockError, PipelineError
from sim.verilator import COMPILE_OPT, VERILATOR_ARGS, wait_limited

_MAIN = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "Vtop.h"
#include "verilated.h"
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  bool below(uint64_t t) { return (next() >> 11) < t; }
};
static std::vector<uint64_t> load(const std::string& p) {
  std::vector<uint64_t> v;
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) { std::fprintf(stderr, "cannot open %s\n", p.c_str()); std::exit(2); }
  uint64_t w;
  while (std::fread(&w, 8, 1, f) == 1) v.push_back(w);
  std::fclose(f);
  return v;
}
int main(int argc, char** argv) {
  Verilated::commandArgs(argc, argv);
  if (argc < 6) { std::fprintf(stderr, "usage: dir seed src sink stall\n"); return 2; }
  std::string dir = argv[1];
  Rng rng{std::strtoull(argv[2], nullptr, 10)};
  uint64_t src_t = (uint64_t)(std::atof(argv[3]) * 9007199254740992.0);
  uint64_t sink_t = (uint64_t)(std::atof(argv[4]) * 9007199254740992.0);
  uint64_t stall_limit = std::strtoull(argv[5], nullptr, 10);
  Vtop* top = new Vtop;
  const int NI = @NI@, NO = @NO@;
  std::vector<std::vector<uint64_t>> in(NI), out(NO);
  std::vector<size_t> want(NO), pos(NI, 0);
  std::vector<int> valid(NI, 0), ready(NO, 0);
  std::vector<uint64_t> last(NO, 0);
  for (int k = 0; k < NI; ++k) in[k] = load(dir + "/in" + std::to_string(k) + ".bin");
  { auto w = load(dir + "/want.bin"); for (int j = 0; j < NO; ++j) want[j] = w[j]; }
  top->ap_rst_n = 0;
  for (int i = 0; i < 8; ++i) { top->ap_clk = 0; top->eval(); top->ap_clk = 1; top->eval(); }
  top->ap_rst_n = 1;
  uint64_t cycle = 0, idle = 0, first_in = 0, last_out = 0;
  bool started = false, deadlock = false;
  for (;;) {
    bool done = true;
    for (int j = 0; j < NO; ++j) done = done && out[j].size() >= want[j];
    if (done) break;
    if (idle >= stall_limit) { deadlock = true; break; }
    for (int k = 0; k < NI; ++k) {
      if (!valid[k] && pos[k] < in[k].size() && !rng.below(src_t)) valid[k] = 1;
      uint64_t d = valid[k] ? in[k][pos[k]] : 0;
      switch (k) { @SET_IN@ }
    }
    for (int j = 0; j < NO; ++j) {
      ready[j] = !rng.below(sink_t);
      switch (j) { @SET_OUT@ }
    }
    top->ap_clk = 0; top->eval();
    bool progress = false;
    std::vector<int> fired(NI, 0);
    for (int k = 0; k < NI; ++k) {
      int rdy = 0;
      switch (k) { @GET_IN@ }
      fired[k] = valid[k] && rdy;
      if (fired[k]) { progress = true; if (!started) { started = true; first_in = cycle; } }
    }
    for (int j = 0; j < NO; ++j) {
      int vld = 0; uint64_t d = 0;
      switch (j) { @GET_OUT@ }
      if (vld && ready[j]) {
        out[j].push_back(d); progress = true; last_out = cycle; last[j] = cycle;
      }
    }
    top->ap_clk = 1; top->eval();
    for (int k = 0; k < NI; ++k) if (fired[k]) { pos[k]++; valid[k] = 0; }
    idle = progress ? 0 : idle + 1;
    ++cycle;
  }
  for (int j = 0; j < NO; ++j) {
    FILE* f = std::fopen((dir + "/out" + std::to_string(j) + ".bin").c_str(), "wb");
    if (!out[j].empty()) std::fwrite(out[j].data(), 8, out[j].size(), f);
    std::fclose(f);
  }
  FILE* r = std::fopen((dir + "/results.json").c_str(), "w");
  std::fprintf(r, "{\"cycles\": %llu, \"deadlock\": %s, ", (unsigned long long)cycle,
               deadlock ? "true" : "false");
  std::fprintf(r, "\"first_in\": %llu, \"last_out\": %llu, \"last\": [",
               (unsigned long long)first_in, (unsigned long long)last_out);
  for (int j = 0; j < NO; ++j)
    std::fprintf(r, "%s%llu", j ? ", " : "", (unsigned long long)last[j]);
  std::fprintf(r, "]}\n");
  std::fclose(r);
  top->final();
  delete top;
  return 0;
}
"""


@dataclass(frozen=True)
class StreamBench:
    """A compiled multi-stream bench."""

    binary: Path
    n_in: int
    n_out: int


@dataclass(frozen=True)
class BenchResult:
    """Output words per output stream and the cycle figures of one run."""

    outputs: list[np.ndarray]
    cycles: int
    latency_cycles: int
    last_beat_cycles: list[int]


def _port(prefix: str, k: int, n: int) -> str:
    return prefix if n == 1 else f"{prefix}_{k}"


def _main_cpp(n_in: int, n_out: int) -> str:
    set_in = " ".join(
        f"case {k}: top->{_port('s_axis', k, n_in)}_tdata = d; "
        f"top->{_port('s_axis', k, n_in)}_tvalid = valid[k]; break;"
        for k in range(n_in)
    )
    get_in = " ".join(
        f"case {k}: rdy = top->{_port('s_axis', k, n_in)}_tready; break;" for k in range(n_in)
    )
    set_out = " ".join(
        f"case {j}: top->{_port('m_axis', j, n_out)}_tready = ready[j]; break;"
        for j in range(n_out)
    )
    get_out = " ".join(
        f"case {j}: vld = top->{_port('m_axis', j, n_out)}_tvalid; "
        f"d = (uint64_t)top->{_port('m_axis', j, n_out)}_tdata; break;"
        for j in range(n_out)
    )
    return (
        _MAIN.replace("@NI@", str(n_in))
        .replace("@NO@", str(n_out))
        .replace("@SET_IN@", set_in)
        .replace("@GET_IN@", get_in)
        .replace("@SET_OUT@", set_out)
        .replace("@GET_OUT@", get_out)
    )


def build_stream_bench(
    sources: list[Path], top: str, n_in: int, n_out: int, build_dir: Path, timeout_s: float = 600
) -> StreamBench:
    """Verilate ``top`` (its file last in ``sources``) with a main for its streams."""
    verilator, make, cxx = require_tool("verilator"), require_tool("make"), require_tool("g++")
    build_dir = Path(build_dir).resolve()
    obj = build_dir / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    main = build_dir / "bench_main.cpp"
    main.write_text(_main_cpp(n_in, n_out))
    env = tool_env()
    make_vars = [
        f"CXX={cxx}",
        f"LINK={cxx}",
        "CFG_CXXFLAGS_PCH_I=-include",
        f"PYTHON3={sys.executable}",
        *COMPILE_OPT,
    ]
    cmds = [
        [str(verilator), "--cc", "--exe", "-Mdir", str(obj), "--top-module", top]
        + ["--prefix", "Vtop", "-o", "Vtop", *VERILATOR_ARGS, str(main)]
        + [str(s) for s in sources],
        [str(make), "-j", "2", "-C", str(obj), "-f", "Vtop.mk", *make_vars],
    ]
    for cmd in cmds:
        log = build_dir / f"{Path(cmd[0]).name}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(
                cmd,
                cwd=build_dir,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            rc = wait_limited(proc, timeout_s)
        if rc != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise PipelineError(f"stream bench build failed ({'; '.join(tail)}); log {log}")
    return StreamBench(obj / "Vtop", n_in, n_out)


def run_stream_bench(
    bench: StreamBench,
    inputs: list[np.ndarray],
    n_out_words: list[int],
    run_dir: Path,
    *,
    seed: int = 0,
    source_pause_prob: float = 0.3,
    sink_pause_prob: float = 0.3,
    stall_limit_cycles: int = 50_000,
    timeout_s: float = 120,
) -> BenchResult:
    """Run the bench; raise DeadlockError (naming the stalled streams) when it stops."""
    if len(inputs) != bench.n_in or len(n_out_words) != bench.n_out:
        raise PipelineError("stream bench: wrong number of input or output streams")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for k, words in enumerate(inputs):
        np.asarray(words, dtype=np.uint64).tofile(run_dir / f"in{k}.bin")
    np.asarray(n_out_words, dtype=np.uint64).tofile(run_dir / "want.bin")
    cmd = [str(bench.binary), str(run_dir), str(seed), repr(float(source_pause_prob))]
    cmd += [repr(float(sink_pause_prob)), str(int(stall_limit_cycles))]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    rc = wait_limited(proc, timeout_s)
    err = proc.stderr.read() if proc.stderr else ""
    if rc != 0:
        raise PipelineError(f"stream bench exited with {rc}: {err.strip()[-300:]}")
    res = json.loads((run_dir / "results.json").read_text())
    if res["deadlock"]:
        raise DeadlockError(
            "verdict", blocked_streams(err.splitlines()), 0, len(n_out_words), stall_limit_cycles
        )
    outs = [np.fromfile(run_dir / f"out{j}.bin", dtype=np.uint64) for j in range(bench.n_out)]
    return BenchResult(
        outs,
        int(res["cycles"]),
        int(res["last_out"]) - int(res["first_in"]),
        [int(c) for c in res["last"]],
    )
