import json
import os

import pytest

from lfcc_pipeline.core.atomic import atomic_path, sha256_file, write_json, write_with
from lfcc_pipeline.core.errors import ArtifactError


def test_write_json_roundtrip(tmp_path):
    write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": 1}


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def broken_writer(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_with(target, broken_writer)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_rename_happens_only_at_the_end(tmp_path):
    target = tmp_path / "x.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ArtifactError, match="cannot write"):
            write_json(ro / "x.json", {})
    finally:
        ro.chmod(0o700)


def test_sha256_changes_with_content(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"a")
    h1 = sha256_file(p)
    p.write_bytes(b"b")
    assert sha256_file(p) != h1
