from lfcc_pipeline.pipeline import manifest as manifest_mod
from lfcc_pipeline.pipeline.manifest import Manifest, fingerprint


def test_fingerprint_is_stable_and_sensitive():
    base = fingerprint({"epochs": 3, "lr": 0.1}, {"teacher": "abc"})
    assert base == fingerprint({"lr": 0.1, "epochs": 3}, {"teacher": "abc"})  # key order is irrelevant
    assert base != fingerprint({"epochs": 4, "lr": 0.1}, {"teacher": "abc"})
    assert base != fingerprint({"epochs": 3, "lr": 0.1}, {"teacher": "abd"})


def test_fingerprint_depends_on_package_version(monkeypatch):
    base = fingerprint({"a": 1}, {})
    monkeypatch.setattr(manifest_mod, "__version__", "999")
    assert fingerprint({"a": 1}, {}) != base


def test_manifest_records_and_checks_outputs(tmp_path):
    m = Manifest(tmp_path)
    m.start("teacher", "fp1", {})
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "w").write_bytes(b"weights")
    m.finish("teacher", ["teacher/w"], 1.5)
    again = Manifest(tmp_path)  # reloaded from disk
    assert again.get("teacher")["status"] == "done"
    assert again.check_outputs("teacher") is None
    (tmp_path / "teacher" / "w").write_bytes(b"weighXs")
    assert "changed" in again.check_outputs("teacher")
    (tmp_path / "teacher" / "w").unlink()
    assert "missing" in again.check_outputs("teacher")


def test_unreadable_manifest_means_rerun(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    assert Manifest(tmp_path).stages == {}


def test_a_failed_rerun_keeps_the_finished_result(tmp_path):
    m = Manifest(tmp_path)
    m.start("export", "fp1", {})
    (tmp_path / "a.onnx").write_bytes(b"good")
    m.finish("export", ["a.onnx"], 1.0)
    m.start("export", "fp2", {})  # a rerun with other settings that fails before writing anything
    m.fail("export", "boom", 0.5)
    entry = Manifest(tmp_path).get("export")
    assert entry["status"] == "done" and entry["fingerprint"] == "fp1" and entry["last_failure"]["error"] == "boom"


def test_a_failed_rerun_that_changed_outputs_is_recorded_as_failed(tmp_path):
    m = Manifest(tmp_path)
    m.start("export", "fp1", {})
    (tmp_path / "a.onnx").write_bytes(b"good")
    m.finish("export", ["a.onnx"], 1.0)
    m.start("export", "fp2", {})
    (tmp_path / "a.onnx").write_bytes(b"new, but the stage failed afterwards")
    m.fail("export", "parity", 0.5)
    assert Manifest(tmp_path).get("export")["status"] == "failed"
