"""The deployment driver (bitstreams/driver): the simulation backend end to end on a real small
build, fault injection, the board directory, torch-free imports, and the board backend's logic
against a stand-in ``pynq`` module (the real board is marked ``board``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from bitstreams.driver import (
    BOARD_REPORT,
    PYTHON_FILES,
    DriverConfig,
    PynqBackend,
    import_pynq,
    load_vectors,
    locate,
    pack_board_dir,
    run_driver,
)
from bitstreams.driver.cli import main
from qphy import host
from qphy.contracts import REPORT_KEYS, Manifest, Report
from qphy.errors import BitMismatchError, ConfigError, ToolNotFound
from tests.bitstreams.conftest import make_hw_dir
from tests.sim.conftest import verilator  # noqa: F401 - the shared fixture (skip or CI failure)

#: Never importable by the driver package (it runs on a PYNQ image).
BLOCKED = ("torch", "brevitas", "qonnx", "finn", "onnx", "onnxruntime")
#: Imported only when a backend is opened.
LAZY = ("pynq", "hw", "sim")
N_VECTORS = 1024
REPO = Path(__file__).resolve().parents[2]


# --- a real small build (the CI fixture) -------------------------------------------------------


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    """(OUT, verdict Report, harness cache) of the small FullyCon w4a4, 1024 golden vectors."""
    request.getfixturevalue("verilator")  # tests/sim's: a skip locally, a failure in CI
    from hw.config import HwBuildConfig
    from qphy.flow import build_and_verify
    from sim.config import SimConfig
    from tests.hw.fixture_export import make_export

    root = tmp_path_factory.mktemp("driver_build")
    cache = root / "harness_cache"
    export = make_export(root / "export", bits="w4a4", n_golden=N_VECTORS)
    out = root / "fullycon_w4a4"
    report = build_and_verify(
        export,
        out,
        HwBuildConfig(target_cycles=64),
        SimConfig(n_vectors=N_VECTORS, seed=7, harness_cache=cache),
    )
    return out, report, cache


FAST = DriverConfig(latency_runs=5, batch_vectors=256, seconds=0.05)


@pytest.mark.rtl
@pytest.mark.slow
def test_sim_backend_end_to_end_matches_the_verdict(built, tmp_path):
    out, verdict, cache = built
    report = run_driver(out, "sim", FAST, tmp_path / BOARD_REPORT, cache_dir=cache)
    assert report.bit_exact and report.mismatches == 0
    assert report.vectors_checked == N_VECTORS >= 1000
    assert report.latency_cycles == verdict.latency_cycles > 0
    assert report.cycles_per_frame == verdict.cycles_per_frame > 0
    assert report.latency_us == pytest.approx(verdict.latency_us)
    assert report.throughput_vectors_per_s == pytest.approx(verdict.throughput_vectors_per_s)
    data = json.loads((tmp_path / BOARD_REPORT).read_text())
    assert tuple(data)[: len(REPORT_KEYS)] == REPORT_KEYS  # the verdict's keys, in order
    assert Report.read(tmp_path / BOARD_REPORT) == report
    assert data["backend"] == "sim" and data["verdict_latency_cycles"] == verdict.latency_cycles
    assert data["latency_distribution"]["cycles"] == verdict.latency_cycles
    assert data["throughput"]["cycles_per_frame"] == pytest.approx(verdict.cycles_per_frame)
    assert data["power"]["idle_w"] is None and data["power"]["load_w"] is None
    assert "no power model" in data["power"]["reason"]
    assert data["energy_per_inference_j"] is None
    assert data["host_outputs"]["max_abs_diff_vs_golden"] == 0.0
    assert data["host_outputs"]["decisions_differing_from_golden"] == 0
    # the verdict compiled this design already: the driver reuses the cached harness
    assert data["backend_details"]["harness_cached"] is True


@pytest.mark.rtl
@pytest.mark.slow
def test_cli_run_sim_and_user_errors(built, tmp_path, capsys):
    out, verdict, cache = built
    dest = tmp_path / "r.json"
    args = ["run", str(out), "--backend", "sim", "--harness-cache", str(cache)]
    assert main([*args, "--vectors", "1000", "--seconds", "0.05", "--out", str(dest)]) == 0
    assert json.loads(dest.read_text())["vectors_checked"] == 1000
    assert "1000 vectors bit-exact" in capsys.readouterr().out
    assert main([*args, "--vectors", "99999"]) == 2
    assert f"99999 vectors asked for, {out} holds {N_VECTORS}" in capsys.readouterr().err
    # the board backend on a build directory: no bitstream there
    assert main(["run", str(out)]) == 2
    assert "holds no .bit" in capsys.readouterr().err


def _flip_one_weight(mem_dir: Path) -> str:
    """Flip the top bit of the first weight word of the last MVAU (feeds the output)."""
    last = sorted(mem_dir.glob("MVAU_rtl_*_memblock.dat"))[-1]
    lines = last.read_text().splitlines()
    word, width = int(lines[0], 16), len(lines[0]) * 4
    lines[0] = format(word ^ (1 << (width - 1)), f"0{len(lines[0])}x")
    last.write_text("\n".join(lines) + "\n")
    return last.name


@pytest.mark.rtl
@pytest.mark.slow
def test_flipped_weight_names_the_first_mismatch(built, tmp_path):
    out, _, cache = built
    mem = tmp_path / "mem"
    shutil.copytree(out / "hw" / "rtl" / "mem", mem)
    _flip_one_weight(mem)
    dest = tmp_path / BOARD_REPORT
    with pytest.raises(
        BitMismatchError,
        match=r"sim vs golden: \d+ mismatching vector\(s\) of 300; first at "
        r"vector \d+, index \d+: expected -?\d+, got -?\d+",
    ) as err:
        run_driver(
            out,
            "sim",
            DriverConfig(n_vectors=300, seconds=0.05),
            dest,
            cache_dir=cache,
            mem_dir=mem,
        )
    data = json.loads(dest.read_text())  # the report is written before the error
    assert data["bit_exact"] is False and data["mismatches"] == err.value.mismatches > 0
    fm = data["first_mismatch"]
    assert (fm["vector"], fm["index"]) == (err.value.vector, err.value.index)
    expected = load_vectors(locate(out), Manifest.read(out / "hw/rtl/manifest.json"), 300)
    assert fm["expected"] == expected.expected[fm["vector"], fm["index"]] != fm["actual"]


# --- the board directory -----------------------------------------------------------------------


def _fake_bitstream(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullycon_w4a4_zcu104.bit").write_bytes(b"\x00bitstream stand-in")
    (d / "fullycon_w4a4_zcu104.hwh").write_text("<hwh stand-in/>")
    (d / "bitstream_manifest.json").write_text("{}\n")
    return d


BOARD_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path = [p for p in sys.path if p not in ("", {repo!r})]
    sys.path.insert(0, {board!r})
    for name in {blocked!r}:
        sys.modules[name] = None  # `import name` now raises ImportError
    import numpy as np
    import bitstreams.driver as drv
    import qphy
    assert qphy.__file__.startswith({board!r}), qphy.__file__
    files = drv.locate({board!r})
    assert files.layout == "board" and files.bitstream.name.endswith(".bit")
    m = files.read_manifest()
    vec = drv.load_vectors(files, m)
    np.save({board!r} + "/check_inputs.npy", vec.inputs)
    from bitstreams.driver.cli import main
    rc = main(["run", {board!r}])
    assert not [k for k in {lazy!r} if sys.modules.get(k) is not None], sorted(sys.modules)
    print("RC", rc, len(vec.inputs))
    """
)


@pytest.mark.rtl
@pytest.mark.slow
def test_pack_makes_a_self_contained_board_dir(built, tmp_path):
    out, _, _ = built
    board = tmp_path / "board"
    written = pack_board_dir(out, _fake_bitstream(tmp_path / "bits"), board)
    for name in (
        "manifest.json",
        "golden_in.npy",
        "golden_out.npy",
        "vectors_in.npy",
        "vectors_expected.npy",
        "sim_report.json",
        "hw_report.json",
        "fullycon_w4a4_zcu104.bit",
        "fullycon_w4a4_zcu104.hwh",
        "bitstream_manifest.json",
        *PYTHON_FILES,
    ):
        assert name in written and (board / name).is_file(), name
    # a fresh interpreter that sees only the board directory (and numpy), torch & co. blocked
    code = BOARD_SCRIPT.format(
        repo=str(REPO), board=str(board), blocked=BLOCKED + LAZY, lazy=("hw", "sim")
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    # no pynq on this machine: the board backend stops with ToolNotFound, exit code 1
    assert f"RC 1 {N_VECTORS}" in res.stdout
    assert "ToolNotFound: required tool 'pynq' not found" in res.stderr
    expected = host.stream_inputs(np.load(out / "export" / "golden_in.npy"), _manifest(out).host)
    assert np.array_equal(np.load(board / "check_inputs.npy"), expected)
    assert np.array_equal(expected, np.load(out / "sim" / "vectors_in.npy"))


def _manifest(out: Path) -> Manifest:
    return Manifest.read(out / "hw" / "rtl" / "manifest.json")


def test_pack_refuses_a_directory_without_bitstream(tmp_path):
    with pytest.raises(ConfigError, match="neither a qphy build directory"):
        pack_board_dir(tmp_path, tmp_path, tmp_path / "board")
    assert not (tmp_path / "board").exists()


# --- imports -----------------------------------------------------------------------------------


IMPORT_SCRIPT = textwrap.dedent(
    """
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None
    import bitstreams.driver
    import bitstreams.driver.cli, bitstreams.driver.pynq_backend, bitstreams.driver.sim_backend
    import bitstreams.driver.run, bitstreams.driver.files, bitstreams.driver.accelerator
    loaded = [k for k in {lazy!r} + {blocked!r} if sys.modules.get(k) is not None]
    assert not loaded, loaded
    print("OK")
    """
)


def test_driver_imports_without_torch_brevitas_qonnx_finn_onnx():
    code = IMPORT_SCRIPT.format(blocked=BLOCKED, lazy=LAZY)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OK"


def test_blocked_import_really_fails():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import torch\nexcept ImportError:\n    print('blocked')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "blocked"


# --- the board backend -------------------------------------------------------------------------


def test_pynq_backend_without_pynq_is_tool_not_found(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynq", None)
    with pytest.raises(ToolNotFound, match=r"required tool 'pynq' not found: .*PYNQ image"):
        import_pynq()
    bit = _fake_bitstream(tmp_path) / "fullycon_w4a4_zcu104.bit"
    manifest = Manifest.read(make_hw_dir(tmp_path / "hw") / "rtl" / "manifest.json")
    with pytest.raises(ToolNotFound, match="pynq"):
        PynqBackend(bit, manifest)


def _toy_board_dir(root: Path, n: int = 300) -> tuple[Path, Manifest]:
    """A board directory around tests/bitstreams' stand-in manifest (30 INT8 in, 20 INT8 out,
    input scale 1, no output tail): the "accelerator" returns the first 20 inputs plus 1."""
    hw = make_hw_dir(root / "hw")
    board = root / "board"
    board.mkdir()
    shutil.copyfile(hw / "rtl" / "manifest.json", board / "manifest.json")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 127, size=(n, 30)).astype(np.float32)
    np.save(board / "golden_in.npy", x)
    np.save(board / "golden_out.npy", x[:, :20] + 1)
    _fake_bitstream(board)
    return board, Manifest.read(board / "manifest.json")


def _fake_pynq(manifest: Manifest, corrupt_frame: int | None = None) -> types.ModuleType:
    """A stand-in for the parts of pynq the backend uses, with an accelerator model behind a
    loopback DMA (each send computes the receive buffer)."""
    i, o = manifest.input, manifest.output

    def accelerate(in_beats):
        ints = host.unpack_beats(in_beats, i, 30)
        y = ints[:, :20] + 1
        if corrupt_frame is not None and corrupt_frame < len(y):
            y[corrupt_frame, 7] += 1
        return host.pack_beats(y, o)

    class Channel:
        def __init__(self, dma, send):
            self.dma, self.send, self.idle, self.transferred = dma, send, True, 0

        def transfer(self, buf):
            if self.send:
                out = accelerate(np.asarray(buf))
                self.dma.recv_buf[: len(out)] = out
                self.dma.recvchannel.transferred = out.nbytes
            else:
                self.dma.recv_buf = buf

        def wait(self):
            pass

    class Dma:
        def __init__(self):
            self.sendchannel, self.recvchannel = Channel(self, True), Channel(self, False)
            self.recv_buf = None

    class Overlay:
        def __init__(self, bitfile, download=True):
            self.bitfile, self.download = bitfile, download
            self.ip_dict = {"dma": {"type": "xilinx.com:ip:axi_dma:7.1"}}
            self.dma = Dma()

    class Sensor:
        def __init__(self, name, watts):
            self.name, self.watts = name, watts

    class Rail:
        def __init__(self, name, watts):
            self.name, self.power = name, Sensor(f"{name}_power", watts)

    class Recorder:
        def __init__(self, *sensors):
            self.sensors = sensors
            self.loaded = False

        def record(self, interval):
            return self

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        @property
        def frame(self):
            # idle on the first recording, +0.5 W per rail under load on the second
            extra = 0.5 if self.loaded else 0.0
            return {s.name: np.array([s.watts + extra]) for s in self.sensors}

    recorders = []

    def data_recorder(*sensors):
        r = Recorder(*sensors)
        r.loaded = bool(recorders)
        recorders.append(r)
        return r

    mod = types.ModuleType("pynq")
    mod.__version__ = "3.0.1-standin"
    mod.Overlay = Overlay
    mod.allocate = lambda shape, dtype: np.zeros(shape, dtype=dtype)
    mod.get_rails = lambda: {"VCCINT": Rail("VCCINT", 1.0), "VCCBRAM": Rail("VCCBRAM", 0.25)}
    mod.DataRecorder = data_recorder
    mod.Clocks = types.SimpleNamespace(fclk0_mhz=199.998)
    return mod


def test_board_backend_logic_with_a_standin_pynq(monkeypatch, tmp_path):
    board, manifest = _toy_board_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(manifest))
    cfg = DriverConfig(latency_runs=50, batch_vectors=1000, seconds=0.05)
    report = run_driver(board, "board", cfg)
    data = json.loads((board / BOARD_REPORT).read_text())
    assert report.bit_exact and report.vectors_checked == 300
    assert tuple(data)[: len(REPORT_KEYS)] == REPORT_KEYS
    assert data["backend"] == "board" and data["clock_mhz"] == 199.998
    assert data["latency_cycles"] == -1 and data["cycles_per_frame"] == -1  # no cycle counter
    lat = data["latency_distribution"]
    assert lat["runs"] == 50 and 0 < lat["min_us"] <= lat["median_us"] <= lat["p99_us"]
    assert data["latency_us"] == pytest.approx(lat["median_us"], abs=1e-6)
    assert data["throughput"]["batch_vectors"] == 1000 and data["throughput_vectors_per_s"] > 0
    power = data["power"]
    assert power["rails"] == ["VCCBRAM", "VCCINT"] and power["reason"] is None
    assert power["idle_w"] == pytest.approx(1.25) and power["load_w"] == pytest.approx(2.25)
    assert data["energy_per_inference_j"] == pytest.approx(1.0 / power["load_vectors_per_s"])
    assert data["backend_details"]["dma"] == "dma"
    assert data["tool_versions"]["pynq"] == "3.0.1-standin"


def test_board_backend_mismatch_names_vector_and_index(monkeypatch, tmp_path):
    board, manifest = _toy_board_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(manifest, corrupt_frame=123))
    cfg = DriverConfig(latency_runs=5, batch_vectors=300, seconds=0.01)
    with pytest.raises(BitMismatchError, match=r"first at vector 123, index 7: expected"):
        run_driver(board, "board", cfg)
    assert json.loads((board / BOARD_REPORT).read_text())["bit_exact"] is False


def test_board_backend_rails_must_exist(monkeypatch, tmp_path):
    board, manifest = _toy_board_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(manifest))
    cfg = DriverConfig(latency_runs=5, batch_vectors=300, seconds=0.01)
    with pytest.raises(ConfigError, match=r"rails \['12V'\] have no power sensor"):
        run_driver(board, "board", cfg, rails=["12V"])


@pytest.mark.board
def test_on_a_board():  # pragma: no cover - run on the board, in the packed directory
    """On a PYNQ board: `cd BOARD_DIR && python3 -m pytest -m board` (bitstreams/driver)."""
    pytest.importorskip("pynq", reason="needs a PYNQ board (the pynq package) and the bitstream")
    board = Path.cwd()
    report = run_driver(board, "board", DriverConfig())
    assert report.bit_exact


def test_board_report_out_never_overwrites_a_users_file(tmp_path, capsys):
    from bitstreams.driver.cli import main as board_main

    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "data"}')
    assert board_main(["run", str(tmp_path), "--backend", "sim", "--out", str(mine)]) == 2
    assert "exists and is not a qphy-board report" in capsys.readouterr().err
    assert mine.read_text() == '{"my": "data"}'
