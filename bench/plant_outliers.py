"""Plant outliers among real faces: writes OUT/img/*.png (the planted images only) and OUT/labels.csv
listing the real faces by absolute path (read in place, never copied) plus the planted ones.

    python bench/plant_outliers.py ../shared/data/ferplus-mini/labels.csv OUT [--per-kind 40]

Kinds (``planted`` column; empty for real faces): constant (one random grey value), noise (half
uniform, half Gaussian), digit (drawn with PIL's default font, size 40, random offset, +-20 degree
rotation, black on white or white on black). Planted faces get random labels. Seed 21.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-kind", type=int, default=40)
    args = ap.parse_args()
    rng = np.random.default_rng(21)
    real = pd.read_csv(args.labels)
    root = args.labels.parent.resolve()
    rows = [
        {"path": str(root / p), "label": n, "split": "train", "planted": ""}
        for p, n in zip(real["path"], real["fer2013_label_name"])
    ]
    classes = sorted(set(real["fer2013_label_name"]))
    img = args.out.resolve() / "img"
    img.mkdir(parents=True, exist_ok=True)

    def add(name: str, image: Image.Image, kind: str) -> None:
        image.save(img / f"{name}.png")
        rows.append({"path": str(img / f"{name}.png"), "label": rng.choice(classes), "split": "train", "planted": kind})

    for i in range(args.per_kind):
        add(f"const_{i}", Image.new("L", (48, 48), int(rng.integers(0, 256))), "constant")
    for i in range(args.per_kind):
        if i % 2:
            a = rng.integers(0, 256, (48, 48), dtype=np.uint8)
        else:
            a = np.clip(rng.normal(128, 40, (48, 48)), 0, 255).astype(np.uint8)
        add(f"noise_{i}", Image.fromarray(a, "L"), "noise")
    font = ImageFont.load_default(size=40)
    for i in range(args.per_kind):
        bg, fg = (0, 255) if i % 2 else (255, 0)
        im = Image.new("L", (48, 48), bg)
        ImageDraw.Draw(im).text((int(rng.integers(4, 16)), int(rng.integers(-6, 4))), str(i % 10), fill=fg, font=font)
        add(f"digit_{i}", im.rotate(float(rng.uniform(-20, 20)), fillcolor=bg), "digit")
    pd.DataFrame(rows).to_csv(args.out / "labels.csv", index=False)
    print(f"{len(rows)} faces ({len(rows) - len(real)} planted) -> {args.out / 'labels.csv'}")


if __name__ == "__main__":
    main()
