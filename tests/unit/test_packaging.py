"""The installed package must contain every sub-package (setuptools only finds those with __init__.py)."""

from pathlib import Path

import lfcc_pipeline

PKG = Path(lfcc_pipeline.__file__).parent


def test_every_source_directory_is_a_package():
    missing = [
        str(d.relative_to(PKG))
        for d in PKG.rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert missing == []


def test_bundled_data_is_package_data():
    assert (PKG / "data" / "fashion_mini.npz").stat().st_size < 5_000_000
