"""Write a few test images of fashion-mini as PNG files (for trying `lfcc-pipeline predict`).

python scripts/export_sample_images.py            # -> examples/images/<class>.png, one per class
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("examples/images"))
    ap.add_argument("--classes", default="Ankle boot,Shirt,Bag", help="comma-separated class names")
    args = ap.parse_args()
    ds = load_dataset(parse_data_spec("fashion-mini"))
    args.out.mkdir(parents=True, exist_ok=True)
    labels = ds.test.labels.tolist()
    for name in args.classes.split(","):
        index = labels.index(ds.classes.index(name))  # the first test image of that class
        image = ds.test.images[index, 0].numpy()  # uint8 (28, 28), grayscale
        path = args.out / f"{name.lower().replace(' ', '_')}.png"
        Image.fromarray(image, mode="L").save(path)
        print(f"{path}: test image {index} ({name})")


if __name__ == "__main__":
    main()
