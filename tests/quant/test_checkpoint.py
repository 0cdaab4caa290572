import pytest
import torch

from models.detector import jobs
from models.detector.fullycon import FullyCon
from qphy.errors import CheckpointError
from qphy.variants import Bits
from quant import checkpoint
from tests.quant.conftest import SMALL


def test_roundtrip_qat(small_w4a4, tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(small_w4a4, path, jobs.fullycon_meta(SMALL, Bits(4, 4), small_w4a4.recipe))
    loaded, meta = jobs.load_fullycon(path, Bits(4, 4))
    assert meta["variant"] == "fullycon_w4a4"
    x = torch.randn(64, SMALL.n_rx) * 3
    with torch.no_grad():
        assert torch.equal(loaded(x), small_w4a4(x))


def test_roundtrip_float(tmp_path):
    model = FullyCon(SMALL)
    path = tmp_path / "f.pt"
    checkpoint.save(model, path, jobs.fullycon_meta(SMALL, None, None))
    loaded, _ = jobs.load_fullycon(path, None)
    x = torch.randn(8, SMALL.n_rx)
    assert torch.equal(loaded(x), model(x))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*qphy train detector --bits w4a4"):
        jobs.load_fullycon(tmp_path / "nope.pt", Bits(4, 4))


def test_wrong_variant(small_w4a4, tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(small_w4a4, path, jobs.fullycon_meta(SMALL, Bits(4, 4), small_w4a4.recipe))
    with pytest.raises(CheckpointError, match="holds fullycon_w4a4, not fullycon_w8a8"):
        jobs.load_fullycon(path, Bits(8, 8))


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        jobs.load_fullycon(bad, None)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(CheckpointError, match="not a qphy checkpoint"):
        jobs.load_fullycon(foreign, None)


def test_no_partial_file_on_failed_save(tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        checkpoint.save(FullyCon(SMALL), tmp_path / "x.pt", {})
    assert list(tmp_path.iterdir()) == []


def test_quant_config_loader_rejects_unknown_keys():
    from models.detector.config import QuantConfig
    from qphy.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown quant config key\(s\) \['zzz'\]"):
        QuantConfig.from_json({"zzz": 1})
    assert QuantConfig.from_json({"bits": "w4a4"}).bits == Bits(4, 4)
