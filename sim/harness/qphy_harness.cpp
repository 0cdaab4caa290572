// qphy's compiled RTL verification harness: a Verilator C++ main for the stitched dataflow top.
//
// Built by sim/harness.py (verilator --cc --exe, then make) with `--prefix Vtop`; no cocotb, no
// DPI. It runs the three phases of the cocotb bench (sim/tb_dataflow.py) cycle for cycle:
//
//   1. latency: frame 0 into the idle pipeline, no backpressure; cycles from its first input
//      handshake to its LAST output handshake;
//   2. throughput: frames [0, n_burst) back to back, no backpressure; steady-state cycles per
//      frame = (end[n_burst-1] - end[n_burst/2]) / (n_burst - 1 - n_burst/2), where end[k] is
//      the cycle of frame k's last output handshake;
//   3. verdict: every frame under seeded random backpressure: each cycle the source may stall
//      (it only drops tvalid between beats, never retracts a presented beat, as cocotbext-axi's
//      AxiStreamSource) and the sink may drop tready. Every output beat goes to the output file.
//      No output progress for stall_limit cycles is a deadlock; after the expected number of
//      beats the sink stays attentive for drain cycles and counts extra (duplicated) beats.
//
// The waits of phases 1 and 2 poll in steps of 64 cycles and idle 16 cycles afterwards, as the
// cocotb bench does, so both benches reach the same cycle figures.
//
// Backpressure PRNG: splitmix64 (Steele, Lea, Flood 2014) seeded with `seed`; each cycle of
// phase 3 draws the source's value first, then the sink's; a stall happens when the top 53 bits
// u satisfy u < floor(p * 2^53). Reproducible across platforms and compilers.
//
// Usage: Vtop key=value ... [+verilator+seed+N +verilator+rand+reset+2]
//   in=<file>          input beats: n_frames * in_beats rows of in_bytes bytes (little endian)
//   out=<file>         output beats written in phase 3 (out_bytes each)
//   results=<file>     JSON results
//   n_frames, in_bytes, in_beats, out_bytes, out_beats   stream layout
//   seed=0  src_pause=0.3  sink_pause=0.3  n_burst=32  stall_limit=100000
//   drain=<cycles>     default 4 * out_beats + 32 (as the cocotb bench)
//   progress=<cycles>  print "qphy-progress <beats> <total> <cycle>" to stderr this often (0: off)
// Exit status: 0 when the run completed (a deadlock or extra beats are results, not errors),
// 2 for bad arguments or files.

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_syms.h"

namespace {

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "qphy_harness: %s\n", msg.c_str());
    std::exit(2);
}

struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // True with probability threshold / 2^53.
    bool below(uint64_t threshold) { return (next() >> 11) < threshold; }
};

uint64_t threshold53(double p) {
    if (!(p >= 0.0 && p < 1.0)) die("pause probabilities must be in [0, 1)");
    return static_cast<uint64_t>(p * 9007199254740992.0);  // 2^53
}

// --- ports of any width: CData/SData/IData/QData or VlWide<N> (32-bit words, LSW first) ---

template <typename T>
constexpr size_t port_bytes() {
    if constexpr (VlIsVlWide<T>::value) {
        return T::Words * 4;
    } else {
        return sizeof(T);
    }
}

// The port's C++ container must be the one Verilator picks for a beat of `nbytes` bytes.
template <typename T>
bool port_fits(size_t nbytes) {
    if constexpr (VlIsVlWide<T>::value) {
        return nbytes > 8 && (nbytes + 3) / 4 == T::Words;
    } else {
        size_t c = nbytes <= 1 ? 1 : nbytes <= 2 ? 2 : nbytes <= 4 ? 4 : 8;
        return nbytes >= 1 && nbytes <= 8 && c == sizeof(T);
    }
}

template <typename T>
void to_port(T& port, const uint8_t* b, size_t nbytes) {
    if constexpr (VlIsVlWide<T>::value) {
        for (size_t w = 0; w < T::Words; ++w) {
            uint32_t v = 0;
            for (size_t k = 0; k < 4; ++k) {
                size_t i = 4 * w + k;
                if (i < nbytes) v |= static_cast<uint32_t>(b[i]) << (8 * k);
            }
            port.m_storage[w] = v;
        }
    } else {
        uint64_t v = 0;
        for (size_t i = 0; i < nbytes; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
        port = static_cast<T>(v);
    }
}

template <typename T>
void from_port(const T& port, uint8_t* b, size_t nbytes) {
    if constexpr (VlIsVlWide<T>::value) {
        for (size_t i = 0; i < nbytes; ++i) b[i] = (port.m_storage[i / 4] >> (8 * (i % 4))) & 0xff;
    } else {
        uint64_t v = static_cast<uint64_t>(port);
        for (size_t i = 0; i < nbytes; ++i) b[i] = (v >> (8 * i)) & 0xff;
    }
}

// Handshake state of the top's internal streams at a deadlock: every public (see the build's
// streams.vlt) pair NAME_tvalid / NAME_tready of the top module's scope, as JSON objects.
// "valid, not ready" names a stream whose consumer stopped taking beats.
std::string stream_states(VerilatedContext* ctx) {
    std::string out;
    const VerilatedScopeNameMap* scopes = ctx->scopeNameMap();
    if (!scopes) return out;
    for (const auto& sc : *scopes) {
        const VerilatedVarNameMap* vars = sc.second->varsp();
        if (!vars) continue;
        for (const auto& v : *vars) {
            std::string name = v.first;
            const std::string suffix = "_tvalid";
            if (name.size() <= suffix.size() ||
                name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
                continue;
            std::string base = name.substr(0, name.size() - suffix.size());
            auto rdy = vars->find((base + "_tready").c_str());
            if (rdy == vars->end()) continue;
            // Single-bit signals live in a CData (one byte).
            int valid = *static_cast<const CData*>(v.second.datap()) & 1;
            int ready = *static_cast<const CData*>(rdy->second.datap()) & 1;
            if (!out.empty()) out += ", ";
            out += "{\"name\": \"" + base + "\", \"valid\": " + std::to_string(valid) +
                   ", \"ready\": " + std::to_string(ready) + "}";
        }
    }
    return out;
}

struct Args {
    std::map<std::string, std::string> kv;
    std::string str(const char* key, const char* dflt = nullptr) const {
        auto it = kv.find(key);
        if (it != kv.end()) return it->second;
        if (!dflt) die(std::string("missing argument ") + key + "=...");
        return dflt;
    }
    uint64_t num(const char* key, const char* dflt = nullptr) const {
        std::string s = str(key, dflt);
        char* end = nullptr;
        errno = 0;
        unsigned long long v = std::strtoull(s.c_str(), &end, 10);
        if (errno || end == s.c_str() || *end) die(std::string("bad integer for ") + key);
        return v;
    }
    double real(const char* key, const char* dflt) const {
        std::string s = str(key, dflt);
        char* end = nullptr;
        double v = std::strtod(s.c_str(), &end);
        if (end == s.c_str() || *end) die(std::string("bad number for ") + key);
        return v;
    }
};

class Bench {
  public:
    Bench(VerilatedContext* ctx, const Args& a)
        : top_(new Vtop{ctx}),
          in_bytes_(a.num("in_bytes")),
          in_beats_(a.num("in_beats")),
          out_bytes_(a.num("out_bytes")),
          out_beats_(a.num("out_beats")),
          n_frames_(a.num("n_frames")) {
        using InT = std::remove_reference_t<decltype(top_->s_axis_tdata)>;
        using OutT = std::remove_reference_t<decltype(top_->m_axis_tdata)>;
        if (!port_fits<InT>(in_bytes_))
            die("in_bytes=" + std::to_string(in_bytes_) + " does not fit s_axis_tdata (" +
                std::to_string(port_bytes<InT>()) + "-byte container)");
        if (!port_fits<OutT>(out_bytes_))
            die("out_bytes=" + std::to_string(out_bytes_) + " does not fit m_axis_tdata (" +
                std::to_string(port_bytes<OutT>()) + "-byte container)");
        if (!in_beats_ || !out_beats_ || !n_frames_) die("beats and frames must be >= 1");
        beat_.resize(out_bytes_);
    }

    void load_inputs(const std::string& path) {
        FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) die("cannot open " + path);
        size_t want = n_frames_ * in_beats_ * in_bytes_;
        in_.resize(want);
        size_t got = std::fread(in_.data(), 1, want, f);
        std::fclose(f);
        if (got != want)
            die(path + " holds " + std::to_string(got) + " bytes, expected " +
                std::to_string(want));
    }

    // One clock cycle: settle the inputs with the clock low, sample both handshakes, rising edge.
    void cycle() {
        top_->ap_clk = 0;
        top_->eval();
        bool in_hs = top_->s_axis_tvalid && top_->s_axis_tready;
        bool out_hs = top_->m_axis_tvalid && top_->m_axis_tready;
        if (out_hs) {
            if (record_cycles_) out_cycles_.push_back(cycle_);
            if (out_file_) {
                from_port(top_->m_axis_tdata, beat_.data(), out_bytes_);
                std::fwrite(beat_.data(), 1, out_bytes_, out_file_);
            }
            ++out_count_;
        }
        top_->ap_clk = 1;
        top_->eval();
        ++cycle_;
        if (in_hs) {
            if (first_in_cycle_ < 0) first_in_cycle_ = static_cast<int64_t>(cycle_ - 1);
            ++src_pos_;
        }
        // Source (cocotbext-axi's rule): decide anew only once the presented beat was taken.
        if (in_hs || !top_->s_axis_tvalid) {
            bool pause = random_ && rng_.below(src_thr_);
            if (src_pos_ < src_end_ && !pause) {
                to_port(top_->s_axis_tdata, &in_[src_pos_ * in_bytes_], in_bytes_);
                top_->s_axis_tvalid = 1;
            } else {
                top_->s_axis_tvalid = 0;
            }
        } else if (random_) {
            rng_.below(src_thr_);  // the source's pause pattern advances every cycle
        }
        top_->m_axis_tready = random_ ? !rng_.below(sink_thr_) : sink_on_;
    }

    void reset() {
        top_->ap_rst_n = 0;
        top_->s_axis_tvalid = 0;
        top_->m_axis_tready = 0;
        for (int i = 0; i < 8; ++i) cycle();
        top_->ap_rst_n = 1;
        for (int i = 0; i < 8; ++i) cycle();
        sink_on_ = true;
    }

    void send(uint64_t n_frames) {
        src_pos_ = 0;
        src_end_ = n_frames * in_beats_;
    }

    // The cocotb bench's wait_outputs: poll every 64 cycles; false after stall_limit idle cycles.
    bool wait_outputs(uint64_t target, uint64_t stall_limit) {
        uint64_t last = out_count_, idle = 0;
        while (out_count_ < target) {
            for (int i = 0; i < 64; ++i) cycle();
            idle = out_count_ != last ? 0 : idle + 64;
            last = out_count_;
            if (idle > stall_limit) return false;
        }
        return true;
    }

    std::unique_ptr<Vtop> top_;
    uint64_t in_bytes_, in_beats_, out_bytes_, out_beats_, n_frames_;
    std::vector<uint8_t> in_, beat_;
    uint64_t cycle_ = 0, out_count_ = 0, src_pos_ = 0, src_end_ = 0;
    int64_t first_in_cycle_ = -1;
    bool record_cycles_ = false, random_ = false, sink_on_ = false;
    std::vector<uint64_t> out_cycles_;
    FILE* out_file_ = nullptr;
    SplitMix64 rng_{0};
    uint64_t src_thr_ = 0, sink_thr_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);  // +verilator+seed+N, +verilator+rand+reset+N
    Args a;
    for (int i = 1; i < argc; ++i) {
        const char* eq = std::strchr(argv[i], '=');
        if (argv[i][0] == '+') continue;
        if (!eq) die(std::string("arguments are key=value, got ") + argv[i]);
        a.kv[std::string(argv[i], eq - argv[i])] = eq + 1;
    }
    Bench b(ctx.get(), a);
    b.load_inputs(a.str("in"));
    const uint64_t seed = a.num("seed", "0");
    const uint64_t n_burst = std::min<uint64_t>(a.num("n_burst", "32"), b.n_frames_);
    const uint64_t stall = a.num("stall_limit", "100000");
    const uint64_t drain = a.num("drain", std::to_string(4 * b.out_beats_ + 32).c_str());
    const uint64_t progress = a.num("progress", "0");
    const uint64_t src_thr = threshold53(a.real("src_pause", "0.3"));
    const uint64_t sink_thr = threshold53(a.real("sink_pause", "0.3"));
    if (n_burst < 2) die("n_burst must be >= 2 (and at most n_frames)");

    const std::string out_path = a.str("out");
    FILE* out = std::fopen(out_path.c_str(), "wb");
    if (!out) die("cannot write " + out_path);
    static char outbuf[1 << 20];
    std::setvbuf(out, outbuf, _IOFBF, sizeof outbuf);

    b.reset();
    const uint64_t ob = b.out_beats_;
    bool ok = true;
    std::string dead_phase;

    // 1. latency on an idle pipeline
    b.record_cycles_ = true;
    b.send(1);
    ok = b.wait_outputs(ob, stall);
    std::string streams;
    if (!ok) streams = stream_states(ctx.get());
    long long latency = -1;
    if (ok) latency = static_cast<long long>(b.out_cycles_[ob - 1]) - b.first_in_cycle_;
    else dead_phase = "latency";
    for (int i = 0; i < 16; ++i) b.cycle();

    // 2. steady-state throughput: a burst without backpressure
    double cpf = -1.0;
    if (ok) {
        uint64_t base = b.out_count_;
        b.send(n_burst);
        ok = b.wait_outputs(base + n_burst * ob, stall);
        if (ok) {
            uint64_t half = n_burst / 2;
            uint64_t end_last = b.out_cycles_[base + n_burst * ob - 1];
            uint64_t end_half = b.out_cycles_[base + (half + 1) * ob - 1];
            uint64_t div = n_burst - 1 - half > 0 ? n_burst - 1 - half : 1;
            cpf = static_cast<double>(end_last - end_half) / static_cast<double>(div);
        } else {
            dead_phase = "throughput";
            streams = stream_states(ctx.get());
        }
        for (int i = 0; i < 16; ++i) b.cycle();
    }
    b.record_cycles_ = false;

    // 3. verdict: every frame under random backpressure on both sides
    const uint64_t expected = b.n_frames_ * ob;
    uint64_t received = 0;
    if (ok) {
        b.rng_ = SplitMix64{seed};
        b.src_thr_ = src_thr;
        b.sink_thr_ = sink_thr;
        b.random_ = true;
        b.out_file_ = out;
        const uint64_t base = b.out_count_;
        b.send(b.n_frames_);
        uint64_t last = base, last_change = b.cycle_, next_report = b.cycle_ + progress;
        while (b.out_count_ - base < expected) {
            b.cycle();
            if (b.out_count_ != last) {
                last = b.out_count_;
                last_change = b.cycle_;
            } else if (b.cycle_ - last_change > stall) {
                ok = false;
                dead_phase = "verdict";
                streams = stream_states(ctx.get());
                break;
            }
            if (progress && b.cycle_ >= next_report) {
                std::fprintf(stderr, "qphy-progress %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                             b.out_count_ - base, expected, b.cycle_);
                std::fflush(stderr);
                next_report = b.cycle_ + progress;
            }
        }
        for (uint64_t i = 0; i < drain; ++i) b.cycle();
        received = b.out_count_ - base;
        b.out_file_ = nullptr;
    }
    std::fclose(out);
    b.top_->final();

    const uint64_t extra = received > expected ? received - expected : 0;
    const std::string res_path = a.str("results");
    FILE* r = std::fopen(res_path.c_str(), "w");
    if (!r) die("cannot write " + res_path);
    std::fprintf(r, "{\n");
    if (latency >= 0) std::fprintf(r, " \"latency_cycles\": %lld,\n", latency);
    else std::fprintf(r, " \"latency_cycles\": null,\n");
    if (cpf >= 0) std::fprintf(r, " \"cycles_per_frame\": %.17g,\n", cpf);
    else std::fprintf(r, " \"cycles_per_frame\": null,\n");
    std::fprintf(r, " \"sim_cycles\": %" PRIu64 ",\n", b.cycle_);
    std::fprintf(r, " \"deadlock\": %s,\n", ok ? "false" : "true");
    std::fprintf(r, " \"deadlock_phase\": \"%s\",\n", dead_phase.c_str());
    std::fprintf(r, " \"extra_beats\": %" PRIu64 ",\n", extra);
    std::fprintf(r, " \"streams\": [%s],\n", streams.c_str());
    std::fprintf(r, " \"beats_received\": %" PRIu64 ",\n", received);
    std::fprintf(r, " \"beats_expected\": %" PRIu64 "\n", expected);
    std::fprintf(r, "}\n");
    std::fclose(r);
    return 0;
}
