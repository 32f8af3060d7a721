"""bench/gpu_carry.py: faces and a wheel packed for a GPU machine come back unchanged."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_carry.py"


def test_pack_then_unpack_gives_every_face_and_the_wheel_back(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rows = []
    for i in range(450):  # 360 Training faces: two mosaic rows of 340, the second partly empty
        split = "Training" if i % 5 else "PublicTest"
        path = f"images/f{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(data / path)
        rows.append({"path": path, "split": split, "label": i % 7})
    pd.DataFrame(rows).to_csv(data / "labels.csv", index=False)
    wheel = tmp_path / "faiss_cpu-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("faiss/", "")
        whl.writestr("faiss/__init__.py", "VERSION = 'packed'\n")

    carry, dest = tmp_path / "carry", tmp_path / "dest"
    run = [sys.executable, str(SCRIPT)]
    subprocess.run(
        [*run, "pack", "--labels", str(data / "labels.csv"), "--faiss-wheel", str(wheel), "--out", str(carry)],
        check=True,
    )
    subprocess.run([*run, "unpack", str(carry), str(dest)], check=True)

    back = pd.read_csv(dest / "ferplus" / "labels.csv")
    assert back["path"].tolist() == [r["path"] for r in rows if r["split"] == "Training"]
    for path in back["path"]:
        np.testing.assert_array_equal(
            np.asarray(Image.open(dest / "ferplus" / path)), np.asarray(Image.open(data / path))
        )
    assert (dest / "site" / "faiss" / "__init__.py").read_text() == "VERSION = 'packed'\n"
