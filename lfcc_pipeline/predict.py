"""`lfcc-pipeline predict --bundle DIR IMAGE...`: top-k labels from a bundle with ONNX Runtime,
numpy and Pillow only (no torch), exactly as an app would run the shipped student."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfcc_pipeline.core.errors import ArtifactError, DataError
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.runtimes.ort_providers import ort_providers


@dataclass(frozen=True)
class Prediction:
    image: str
    top: list[tuple[str, float]]  # (label, probability)


class BundleModel:
    """A bundle directory: model ONNX + preprocess.json + labels.json."""

    def __init__(self, bundle: Path, model: str = "student.onnx", provider: str = "cpu") -> None:
        import onnxruntime as ort

        self.dir = Path(bundle)
        try:
            self.pre = Preprocess.from_dict(json.loads((self.dir / "preprocess.json").read_text()))
            self.labels = json.loads((self.dir / "labels.json").read_text())
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ArtifactError(f"{self.dir} is not a readable bundle ({e})",
                                "pass the bundle/ directory a run wrote (preprocess.json, labels.json, *.onnx)") from e  # fmt: skip
        path = self.dir / model
        if not path.is_file():
            raise ArtifactError(
                f"{path} does not exist",
                f"models in the bundle: {', '.join(sorted(p.name for p in self.dir.glob('*.onnx')))}",
            )
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=ort_providers(provider))
        except Exception as e:  # onnxruntime's own exception types
            raise ArtifactError(
                f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0][:160]}", "re-export it"
            ) from e
        self.input = self.session.get_inputs()[0].name

    def predict(self, images: list[Path], k: int = 5) -> list[Prediction]:
        from PIL import Image, UnidentifiedImageError

        out = []
        for img in images:
            try:
                with Image.open(img) as im:
                    x = self.pre.apply(im)
            except (OSError, UnidentifiedImageError) as e:
                raise DataError(f"cannot read image {img}: {e}", "pass JPEG/PNG/... image files") from e
            logits = self.session.run(None, {self.input: x})[0][0].astype(np.float64)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            top = np.argsort(-p)[: max(1, min(k, len(p)))]
            out.append(Prediction(str(img), [(str(self.labels[i]), float(p[i])) for i in top]))
        return out
