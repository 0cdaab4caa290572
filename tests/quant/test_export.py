import json

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from qphy.errors import BitMismatchError
from qphy.fsutil import MARKER
from qphy.variants import Bits
from quant.export import (
    GOLDEN_IN,
    GOLDEN_OUT,
    MODEL_FILE,
    REPORT_FILE,
    compare_traces,
    export_verified,
    qonnx_traces,
    saturating,
    torch_traces,
)
from tests.quant.conftest import SMALL, calibrated

# Every width the recipes support is exported exactly; a spread keeps the test fast.
BITS = [Bits(2, 2), Bits(4, 4), Bits(8, 8), Bits(3, 6), Bits(6, 3)]


def _inputs(model, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SMALL.n_rx)).astype(np.float32) * 2
    in_scale = float(model.inp.act_quant.scale().reshape(-1)[0])
    x[n // 2 :] *= 200 * in_scale  # far beyond the int8 input range
    return x, in_scale


@pytest.mark.parametrize("bits", BITS, ids=lambda b: b.tag)
def test_export_is_integer_exact(bits, tmp_path):
    model = calibrated(bits)
    x, in_scale = _inputs(model, 1000)
    report = export_verified(model, x, tmp_path / "exp", {"variant": f"small_{bits.tag}"})
    assert report["qonnx_matches_torch"] is True
    assert report["vectors_checked"] == 1000
    assert report["saturating_vectors"] >= 500
    assert len(report["activation_quantizers_checked"]) == SMALL.n_hidden_layers + 2
    out = tmp_path / "exp"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MODEL_FILE, GOLDEN_IN, GOLDEN_OUT, REPORT_FILE, MARKER]
    )
    golden_out = np.load(out / GOLDEN_OUT)
    ints = golden_out / report["output_scale"]
    assert np.array_equal(ints, np.round(ints))  # the golden output is integer * scale
    assert json.loads((out / REPORT_FILE).read_text())["vectors_checked"] == 1000
    assert saturating(np.load(out / GOLDEN_IN), in_scale).sum() == report["saturating_vectors"]


def test_tampered_graph_is_caught_naming_first_vector(small_w4a4, tmp_path):
    x, _ = _inputs(small_w4a4, 200)
    export_verified(small_w4a4, x, tmp_path / "exp", {"variant": "small_w4a4"})
    qm = ModelWrapper(str(tmp_path / "exp" / MODEL_FILE)).transform(InferShapes())
    # Bump one bias of the last layer by a large amount: the output quantizer must disagree.
    gemms = [n for n in qm.graph.node if n.op_type == "Gemm"]
    bias_quant = qm.find_producer(gemms[-1].input[2])
    b = qm.get_initializer(bias_quant.input[0]).copy()
    b[3] += 1000.0
    qm.set_initializer(bias_quant.input[0], b)
    ref, _ = torch_traces(small_w4a4, x)
    got, _ = qonnx_traces(qm, x)
    with pytest.raises(BitMismatchError, match=r"first at vector 0, index 3"):
        compare_traces(ref, got)


def test_failed_export_leaves_nothing(small_w4a4, tmp_path, monkeypatch):
    import quant.export as ex

    def boom(*_a, **_k):
        raise BitMismatchError("forced", 5, 1, 2, 3)

    monkeypatch.setattr(ex, "compare_traces", boom)
    x, _ = _inputs(small_w4a4, 100)
    with pytest.raises(BitMismatchError, match="vector 5"):
        export_verified(small_w4a4, x, tmp_path / "exp", {"variant": "small_w4a4"})
    assert list(tmp_path.iterdir()) == []


def test_chunked_export_equals_one_batch(small_w4a4, tmp_path, monkeypatch):
    """A large golden set is verified in chunks (a million vectors in one batch was
    OOM-killed at 24 GB): the outputs are the one-batch outputs, in order."""
    import qphy.reference as reference

    x, _ = _inputs(small_w4a4, 200)
    export_verified(small_w4a4, x, tmp_path / "one", {"variant": "small_w4a4"})
    monkeypatch.setattr(reference, "EXEC_CHUNK", 64)  # 64, 64, 64, 8
    assert [s.stop - s.start for s in reference.chunks(200)] == [64, 64, 64, 8]
    export_verified(small_w4a4, x, tmp_path / "chunked", {"variant": "small_w4a4"})
    one = np.load(tmp_path / "one" / GOLDEN_OUT)
    assert np.array_equal(np.load(tmp_path / "chunked" / GOLDEN_OUT), one)
    qm = ModelWrapper(str(tmp_path / "one" / MODEL_FILE))
    assert np.array_equal(reference.execute_batch(qm, x).reshape(len(x), -1), one)


def test_mismatch_in_a_later_chunk_names_the_global_vector(small_w4a4):
    x, _ = _inputs(small_w4a4, 50)
    ref, _ = torch_traces(small_w4a4, x)
    got, _ = torch_traces(small_w4a4, x)
    got[-1].ints[7, 2] += 1
    with pytest.raises(BitMismatchError, match=r"first at vector 135, index 2"):
        compare_traces(ref, got, first=128)
