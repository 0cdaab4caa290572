"""The host runtime (qphy.host) works without torch, brevitas or finn, as on a PYNQ board, and
round-trips the golden vectors of a real hw build through the HostSpec in its manifest."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from hw.config import HwBuildConfig
from hw.runner import run_build

#: Run in a fresh interpreter where these cannot be imported at all.
BLOCKED = ("torch", "brevitas", "finn", "qonnx", "onnx", "onnxruntime")

SCRIPT = textwrap.dedent(
    """
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # `import name` now raises ImportError
    import numpy as np
    from qphy import host
    from qphy.contracts import Manifest

    m = Manifest.read({manifest!r})
    x = np.load({golden_in!r})
    y = np.load({golden_out!r})
    ints_in = host.stream_inputs(x, m.host)
    ints_out = host.expected_integers(y, m.host)
    # the stream round trip the board driver and the simulation both use
    buf = host.pack_beats(ints_in, m.input)
    assert buf.shape == (len(x) * m.input.beats_per_frame, m.input.beat_bytes), buf.shape
    assert np.array_equal(host.unpack_beats(buf, m.input, ints_in.shape[1]), ints_in)
    out_buf = host.pack_beats(ints_out, m.output)
    back = host.unpack_beats(out_buf, m.output, ints_out.shape[1])
    assert np.array_equal(back, ints_out)
    # integers -> the model's float outputs, bit for bit; then hard decisions
    assert np.array_equal(host.outputs(back, m.host), y.reshape(len(y), -1))
    decisions = host.decide(host.outputs(back, m.host), m.host)
    assert m.host.decision == "sign" and set(np.unique(decisions)) <= {{-1, 1}}
    assert not [k for k in {blocked!r} if sys.modules.get(k) is not None]
    print("OK", len(x), ints_in.shape, ints_out.shape)
    """
)


@pytest.fixture(scope="module")
def hw_dir(small_export, tmp_path_factory):
    build = tmp_path_factory.mktemp("hw_host")
    run_build(small_export / "model.qonnx.onnx", HwBuildConfig(target_cycles=64), build)
    return build


def test_host_runtime_without_torch_round_trips_golden(hw_dir, small_export):
    code = SCRIPT.format(
        blocked=BLOCKED,
        manifest=str(hw_dir / "rtl" / "manifest.json"),
        golden_in=str(small_export / "golden_in.npy"),
        golden_out=str(small_export / "golden_out.npy"),
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK 256")


def test_blocked_import_really_fails():
    """The blocking itself works (so the test above cannot pass by accident)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import torch\nexcept ImportError:\n    print('blocked')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "blocked"
