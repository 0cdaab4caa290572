"""The wheel carries every package and data file: built from the checkout, installed outside it
(non-editable), and run from another working directory to a bit-exact RTL verdict.

``pip wheel --no-deps --no-build-isolation`` builds it; ``pip install --no-deps --target DIR``
installs it without touching the environment (torch and the rest come from the running venv);
``qphy build onnx`` then runs with only DIR on PYTHONPATH and the checkout nowhere on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.tools import tool_or_skip

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: What a `qphy build` needs beyond the Python modules (a wheel once shipped without them).
DATA = (
    "sim/harness/qphy_harness.cpp",
    "sim/verilator-wrapper.sh",
    "quant/checkpoints/fullycon_w4a4_fixed.pt",
    "hw/synth_model_coeffs.json",
    "hw/synth_calibration.json",
    "models/detector/target.py",
    "models/csi/target.py",
    "experiments/studies/fullycon_pruning.py",
)


#: What is no source of the package (venvs, caches, build outputs).
NOT_SOURCE = (
    ".git",
    ".venv",
    "build",
    ".cache",
    "__pycache__",
    "*.egg-info",
    ".*_cache",
    "sim_build",
)


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        check=True,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a clean copy of the checkout: setuptools builds in-tree (build/, *.egg-info),
    # and a stale build/lib in the checkout would leak removed modules into the wheel.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("qphy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [d for d in DATA if d not in names]
    assert missing == [], f"the wheel lacks {missing}"
    site = tmp / "site"
    _pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp)
    return site


def test_installed_wheel_builds_a_qonnx_file_bit_exact_from_elsewhere(installed, tmp_path):
    tool_or_skip("verilator", "run `make setup`")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    # Where the modules come from, and the exported QONNX of a small FullyCon made by the
    # installed package (the checkout is not on the path).
    script = (
        "import sys, qphy, models, quant, experiments\n"
        "from pathlib import Path\n"
        "site = Path(sys.argv[1]).resolve()\n"
        "for m in (qphy, models, quant, experiments):\n"
        "    assert site in Path(m.__file__).resolve().parents, m.__file__\n"
        "import numpy as np, torch\n"
        "from models.detector.fullycon import FullyConShape\n"
        "from models.detector.qat import QuantFullyCon\n"
        "from qphy.contracts import HostExtras\n"
        "from qphy.variants import parse_bits\n"
        "from quant.export import export_verified\n"
        "from quant.recipes import Recipe\n"
        "torch.manual_seed(0)\n"
        "shape = FullyConShape(n_rx=8, k_tx=4, hidden=16, n_hidden_layers=1)\n"
        "m = QuantFullyCon(Recipe(parse_bits('w4a4')), shape).train()\n"
        "with torch.no_grad():\n"
        "    m(torch.randn(256, 8) * 2)\n"
        "x = (np.random.default_rng(0).standard_normal((64, 8)) * 2).astype(np.float32)\n"
        "x[1::2] *= 64.0\n"
        "export_verified(m.eval(), x, Path('export'), {'variant': 'tiny_w4a4'}, "
        "HostExtras(decision='sign'))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(installed)], cwd=work, env=env, check=True)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "qphy.cli",
            "build",
            "onnx",
            "export/model.qonnx.onnx",
            "--out",
            "out",
            "--vectors",
            "64",
            "--target-cycles",
            "16",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    print(res.stdout.strip())
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PASS — bit-exact on 64 vectors" in res.stdout
    assert (work / "out" / "report.json").is_file()
