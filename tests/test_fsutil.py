"""--out rules (qphy.fsutil): a user's files are never deleted or overwritten; two writers of one
output never both succeed; a failure or a signal leaves nothing half-written behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from qphy.errors import ConfigError
from qphy.fsutil import MARKER, OutputLock, StagedDir, check_out_dir, claimed_dir


def _tree(root):
    """Every path under ``root`` with its bytes (files) or None (folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def _publish(out, payload, kind="build"):
    with StagedDir(out, kind) as staged:
        (staged.path / "result.txt").write_text(payload)
        staged.publish()


def test_new_path_is_created_with_its_parents_and_marked(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    _publish(out, "1")
    assert (out / "result.txt").read_text() == "1"
    assert json.loads((out / MARKER).read_text())["qphy_output"] == "build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_failed_build_removes_staging_and_created_parents(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), StagedDir(out, "build") as staged:
        (staged.path / "half.txt").write_text("x")
        raise RuntimeError("half-way")
    assert list(tmp_path.iterdir()) == []


def test_empty_folder_is_used_and_previous_output_replaced_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _publish(out, "1")
    (out / "stale.txt").write_text("from the first build")
    _publish(out, "2")
    assert (out / "result.txt").read_text() == "2"
    assert not (out / "stale.txt").exists()  # replaced as a whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, lock or old copy


def test_foreign_non_empty_folder_is_refused_and_left_in_place(tmp_path):
    out = tmp_path / "proj"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _tree(tmp_path)
    with pytest.raises(ConfigError, match="not empty and is not a qphy output"):
        StagedDir(out, "build")
    with pytest.raises(ConfigError, match="not empty and is not a qphy output"):
        with claimed_dir(out, "evaluate"):
            pass
    assert _tree(tmp_path) == before


def test_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "model.onnx").write_bytes(b"m")
    _publish(proj / "build", "1")
    monkeypatch.chdir(proj / "build")
    before = _tree(tmp_path)
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(ConfigError, match="working directory or a folder above it"):
            check_out_dir(out, "build")
    assert _tree(tmp_path) == before


def test_folder_holding_an_input_is_refused(tmp_path):
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"m")
    with pytest.raises(ConfigError, match="holds the input"):
        check_out_dir(tmp_path / "m", "build", inputs=(model,))
    assert model.read_bytes() == b"m"


def test_file_symlink_and_kind_mismatch_are_refused(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out_dir(f, "build")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="symbolic link"):
        check_out_dir(link, "build")
    _publish(tmp_path / "exp", "1", kind="export")
    with pytest.raises(ConfigError, match="holds a qphy export output, not a build output"):
        check_out_dir(tmp_path / "exp", "build")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out_dir(f / "below", "build")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_parent_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="permission denied"):
        check_out_dir(ro / "out", "build")


def test_second_writer_of_one_output_fails_while_the_first_holds_it(tmp_path):
    out = tmp_path / "out"
    with StagedDir(out, "build") as first:
        with pytest.raises(ConfigError, match=r"another qphy process \(pid \d+\) is writing it"):
            StagedDir(out, "build")
        first.publish()
    _publish(out, "again")  # the lock is gone with the first writer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_lock_is_released_by_the_kernel_when_the_holder_dies(tmp_path):
    out = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import os
        from qphy.fsutil import OutputLock
        lock = OutputLock(__import__('pathlib').Path({str(out)!r}))
        lock.acquire()
        os._exit(9)  # killed: no release
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    lock = OutputLock(out)
    lock.acquire()  # a stale lock file does not block
    lock.release()


def test_claimed_dir_removes_what_it_created_on_failure_but_keeps_experiments(tmp_path):
    out = tmp_path / "ber"
    with pytest.raises(RuntimeError), claimed_dir(out, "evaluate") as d:
        (d / "ber.json").write_text("{}")
        raise RuntimeError("failed")
    assert not out.exists()
    with pytest.raises(RuntimeError), claimed_dir(out, "experiment", keep_on_failure=True) as d:
        (d / "points").mkdir()
        raise RuntimeError("interrupted")
    assert (out / "points").is_dir()  # resumable
    with claimed_dir(out, "experiment", keep_on_failure=True) as d:  # resumed in place
        assert (d / "points").is_dir()
