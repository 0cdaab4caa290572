"""The files the driver reads: a qphy build directory or a board directory, and the packer.

Two layouts hold the same files:

* a build directory ``OUT`` (``qphy build ... --out OUT``): ``OUT/hw/rtl/manifest.json``,
  ``OUT/export/golden_{in,out}.npy``, ``OUT/sim/vectors_{in,expected}.npy``,
  ``OUT/report.json`` (the RTL verdict), ``OUT/hw/hw_report.json`` and the RTL itself
  (``OUT/hw/rtl/{src,mem}``, which the simulation backend runs);
* a board directory (:func:`pack_board_dir`): the same files flat, the verdict as
  ``sim_report.json``, the bitstream ``<name>.bit`` with its ``<name>.hwh``, and the pure-Python
  files the driver needs (:data:`PYTHON_FILES`), so ``python3 -m bitstreams.driver run .``
  works from it on a PYNQ image with nothing of qphy installed.

Golden vectors: the export's FLOAT inputs are quantized and packed here exactly as on the board
(:func:`qphy.host.stream_inputs`); the integers the accelerator must return come from the
golden float outputs (:func:`qphy.host.expected_integers`). The sim stage's integer vectors
(``vectors_*.npy``) are checked against them and extend them where the build simulated more
vectors than the export holds (or supply the expected integers of a float output tail, which
only qonnx can compute).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qphy import host
from qphy.contracts import Manifest, Report
from qphy.errors import ConfigError, ContractError, MalformedModelError
from qphy.fsutil import StagedDir

MANIFEST = "manifest.json"
GOLDEN_IN = "golden_in.npy"
GOLDEN_OUT = "golden_out.npy"
VECTORS_IN = "vectors_in.npy"
VECTORS_EXPECTED = "vectors_expected.npy"
HW_REPORT = "hw_report.json"
#: The RTL verdict in a board directory (``OUT/report.json`` of the build).
SIM_REPORT = "sim_report.json"
#: What the driver writes.
BOARD_REPORT = "board_report.json"
#: bitstreams/build.py's record of a Vivado run (copied when present).
BITSTREAM_MANIFEST = "bitstream_manifest.json"

_REPO = Path(__file__).resolve().parents[2]
#: The pure-Python files a board directory carries (relative to the repository root): numpy is
#: the only third-party import among them.
PYTHON_FILES = (
    "qphy/__init__.py",
    "qphy/contracts.py",
    "qphy/errors.py",
    "qphy/fsutil.py",
    "qphy/host.py",
    "qphy/host_ops.py",
    "qphy/variants.py",
    "bitstreams/__init__.py",
    "bitstreams/driver/__init__.py",
    "bitstreams/driver/__main__.py",
    "bitstreams/driver/accelerator.py",
    "bitstreams/driver/cli.py",
    "bitstreams/driver/files.py",
    "bitstreams/driver/pynq_backend.py",
    "bitstreams/driver/run.py",
    "bitstreams/driver/sim_backend.py",
    "bitstreams/driver/README.md",
)


@dataclass(frozen=True)
class DeployFiles:
    """Where one deployment's files are (a build or a board directory).

    Attributes:
        root: The directory given.
        layout: ``build`` or ``board``.
        manifest: The RTL's Manifest.
        golden_in, golden_out: The export's golden float vectors.
        vectors_in, vectors_expected: The sim stage's integer vectors (None if absent).
        sim_report: The RTL verdict (report.json), None if absent.
        hw_report: hw_report.json (estimated resources, FIFO depths), None if absent.
        rtl_dir: ``hw/rtl`` (src, mem) for the simulation backend; None in a board directory.
        bitstream: The ``.bit`` (its ``.hwh`` next to it); None in a build directory.
    """

    root: Path
    layout: str
    manifest: Path
    golden_in: Path
    golden_out: Path
    vectors_in: Path | None
    vectors_expected: Path | None
    sim_report: Path | None
    hw_report: Path | None
    rtl_dir: Path | None
    bitstream: Path | None

    def read_manifest(self) -> Manifest:
        return Manifest.read(self.manifest)

    def read_sim_report(self) -> Report | None:
        return Report.read(self.sim_report) if self.sim_report is not None else None

    def read_hw_report(self) -> dict:
        if self.hw_report is None:
            return {}
        try:
            return json.loads(self.hw_report.read_text())
        except (OSError, ValueError) as exc:
            raise ContractError(f"{self.hw_report}: unreadable ({exc})") from exc


def _opt(path: Path) -> Path | None:
    return path if path.is_file() else None


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ContractError(f"{path}: no {what} (is this a finished qphy build or board dir?)")
    return path


def find_bitstream(directory: Path) -> Path | None:
    """The one ``*.bit`` in ``directory`` (None if there is none); its ``.hwh`` must exist."""
    bits = sorted(Path(directory).glob("*.bit"))
    if not bits:
        return None
    if len(bits) > 1:
        names = ", ".join(b.name for b in bits)
        raise ConfigError(f"{directory} holds several bitstreams ({names}): keep one")
    bit = bits[0]
    if not bit.with_suffix(".hwh").is_file():
        raise ConfigError(
            f"{bit} has no {bit.with_suffix('.hwh').name} next to it: PYNQ needs the hardware "
            "handoff of the same basename"
        )
    return bit


def locate(directory: Path) -> DeployFiles:
    """Find a deployment's files in a build directory or a board directory."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"{d} is not a directory")
    if (d / "hw" / "rtl" / MANIFEST).is_file():
        return DeployFiles(
            root=d,
            layout="build",
            manifest=d / "hw" / "rtl" / MANIFEST,
            golden_in=_need(d / "export" / GOLDEN_IN, "golden inputs"),
            golden_out=_need(d / "export" / GOLDEN_OUT, "golden outputs"),
            vectors_in=_opt(d / "sim" / VECTORS_IN),
            vectors_expected=_opt(d / "sim" / VECTORS_EXPECTED),
            sim_report=_opt(d / Report.FILE),
            hw_report=_opt(d / "hw" / HW_REPORT),
            rtl_dir=d / "hw" / "rtl",
            bitstream=None,
        )
    if (d / MANIFEST).is_file():
        return DeployFiles(
            root=d,
            layout="board",
            manifest=d / MANIFEST,
            golden_in=_need(d / GOLDEN_IN, "golden inputs"),
            golden_out=_need(d / GOLDEN_OUT, "golden outputs"),
            vectors_in=_opt(d / VECTORS_IN),
            vectors_expected=_opt(d / VECTORS_EXPECTED),
            sim_report=_opt(d / SIM_REPORT),
            hw_report=_opt(d / HW_REPORT),
            rtl_dir=d / "rtl" if (d / "rtl" / "src").is_dir() else None,
            bitstream=find_bitstream(d),
        )
    raise ConfigError(
        f"{d} is neither a qphy build directory (hw/rtl/manifest.json) nor a board directory "
        "(manifest.json; made by `qphy-board pack`)"
    )


@dataclass(frozen=True)
class Vectors:
    """The vectors one run sends, as the board computes them.

    Attributes:
        inputs: Stream-order input integers ``(n, elems)`` (quantized here from floats).
        expected: Stream-order output integers the accelerator must return ``(n, out_elems)``.
        golden_out: The golden float outputs ``(n_float, M)`` of the first ``n_float`` vectors.
        n_float: Vectors that come from the export's golden floats (the rest from the sim
            stage's integer vectors).
    """

    inputs: np.ndarray
    expected: np.ndarray
    golden_out: np.ndarray
    n_float: int


def load_vectors(files: DeployFiles, manifest: Manifest, n: int | None = None) -> Vectors:
    """The first ``n`` vectors (all when None): golden floats through the host runtime, then
    the sim stage's integers beyond them; both must agree where they overlap."""
    spec = manifest.host
    x = np.load(files.golden_in)
    y = np.load(files.golden_out)
    if len(x) != len(y):
        raise ContractError(f"{len(x)} golden inputs but {len(y)} golden outputs")
    y = y.reshape(len(y), -1)
    sim_in = np.load(files.vectors_in) if files.vectors_in is not None else None
    sim_exp = np.load(files.vectors_expected) if files.vectors_expected is not None else None
    total = max(len(x), len(sim_in) if sim_in is not None else 0)
    n = total if n is None else int(n)
    if n < 1:
        raise ConfigError(f"--vectors must be >= 1, got {n}")
    if n > total:
        raise ConfigError(f"{n} vectors asked for, {files.root} holds {total}")
    n_float = min(n, len(x))
    inputs = host.stream_inputs(x[:n_float], spec)
    try:
        expected = host.expected_integers(y[:n_float], spec)
    except MalformedModelError:
        # A float output tail (bias): only qonnx knows the accumulator; the sim stage saved it.
        if sim_exp is None:
            raise
        expected = sim_exp[:n_float].astype(np.int64)
    if sim_in is not None and sim_exp is not None:
        k = min(n_float, len(sim_in))
        if not np.array_equal(sim_in[:k], inputs[:k]):
            bad = np.argwhere(sim_in[:k] != inputs[:k])[0]
            raise ContractError(
                f"the host runtime here quantizes golden vector {bad[0]}, element {bad[1]} to "
                f"{inputs[bad[0], bad[1]]}, the build simulated {sim_in[bad[0], bad[1]]}"
            )
        if not np.array_equal(sim_exp[:k], expected[:k]):
            raise ContractError("the golden outputs do not match the sim stage's expected vectors")
        if n > n_float:
            inputs = np.concatenate([inputs, sim_in[n_float:n].astype(np.int64)])
            expected = np.concatenate([expected, sim_exp[n_float:n].astype(np.int64)])
    return Vectors(inputs=inputs, expected=expected, golden_out=y[:n_float], n_float=n_float)


def pack_board_dir(out_dir: Path, bitstream_dir: Path, board_dir: Path) -> list[str]:
    """Assemble the directory a user copies to the board; returns its files (relative).

    Args:
        out_dir: A finished build directory (``qphy build ... --out OUT``).
        bitstream_dir: ``qphy bitstream``'s output directory (one ``.bit`` + ``.hwh``), or a
            directory holding just those two.
        board_dir: Created (replaced if it exists, in one rename).
    """
    files = locate(out_dir)
    if files.layout != "build":
        raise ConfigError(f"{out_dir} is not a qphy build directory (hw/rtl/manifest.json)")
    files.read_manifest()  # refuse a manifest of another version before copying anything
    bit = find_bitstream(Path(bitstream_dir)) if Path(bitstream_dir).is_dir() else None
    if bit is None:
        raise ConfigError(
            f"{bitstream_dir} holds no .bit: build one with `qphy bitstream {out_dir} --board B "
            "--out DIR` (needs Vivado)"
        )
    copies = {
        MANIFEST: files.manifest,
        GOLDEN_IN: files.golden_in,
        GOLDEN_OUT: files.golden_out,
        VECTORS_IN: files.vectors_in,
        VECTORS_EXPECTED: files.vectors_expected,
        SIM_REPORT: files.sim_report,
        HW_REPORT: files.hw_report,
        bit.name: bit,
        bit.with_suffix(".hwh").name: bit.with_suffix(".hwh"),
        BITSTREAM_MANIFEST: _opt(Path(bitstream_dir) / BITSTREAM_MANIFEST),
    }
    for rel in PYTHON_FILES:
        # the README is documentation: an installed (non-editable) qphy may not carry it
        copies[rel] = _opt(_REPO / rel) if rel.endswith(".md") else _REPO / rel
    with StagedDir(board_dir, "board", inputs=(Path(out_dir), Path(bitstream_dir))) as staged:
        written = []
        for rel, src in copies.items():
            if src is None:
                continue
            dest = staged.path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            written.append(rel)
        # Fail here rather than on the board: the copies must load as the driver reads them.
        Manifest.read(staged.path / MANIFEST)
        locate(staged.path)
        staged.publish()
    return sorted(written)
