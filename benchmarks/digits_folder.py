"""Write scikit-learn's 1,797 handwritten digits (8x8 grey, shipped inside the wheel) as an image folder.

    python benchmarks/digits_folder.py ~/folders/digits
    cnnlstm data --data ~/folders/digits --image-size 28
    cnnlstm reproduce --data ~/folders/digits --image-size 28 --out runs/digits-study

One folder per digit, one PNG per image (the 0-16 values scaled to 0-255), and a ``dataset.toml``
saying a horizontal flip does not preserve the labels. cnnlstm splits the single tree 80/20 per
class with seed 0. benchmarks/RESULTS.md ("Your data and your model") has what it measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(root: Path) -> int:
    """Write the folder; return the number of images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    (root / "dataset.toml").write_text("flip_preserves_labels = false  # a mirrored 2 is no digit\n")
    return len(digits.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder to write (created)")
    args = parser.parse_args()
    print(f"wrote {write_digits(args.out.expanduser())} images to {args.out}")


if __name__ == "__main__":
    main()
