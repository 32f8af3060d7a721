"""Ship the FER2013 Training split and faiss to a bare GPU machine under a 64 MiB transfer limit.

The project's GPU check (`bench/gpu_check.sh`) runs on a lent machine that receives only the
repository's working tree (at most 64 MiB with what it carries), has PyTorch but not faiss, and
cannot reach a package index or `../shared/data`. The Training split's 28,558 PNGs take 49 MiB
and the faiss-cpu wheel 18 MiB; packed here they take 53 MiB:

- the faces as one lossless grayscale PNG mosaic (46 MB; every pixel checked on unpacking),
- their rows of labels.csv, gzipped (0.8 MB),
- the faiss package unpacked from its wheel and re-compressed with xz (9.4 MB).

Usage:
    python bench/gpu_carry.py pack --labels ../shared/data/ferplus/labels.csv \\
        --faiss-wheel faiss_cpu-1.15.1-cp310-abi3-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl --out .gpucarry
    python bench/gpu_carry.py unpack .gpucarry /tmp/carry        (on the GPU machine)

`pack` writes into a folder the repository must ignore (`echo /.gpucarry/ >> .git/info/exclude`)
and that is deleted after the run: the faces are never committed. `unpack` writes
DEST/ferplus/labels.csv with one PNG per face, and DEST/site/faiss (put DEST/site on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import io
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SIDE = 48  # FER2013 faces are 48 x 48 grayscale
COLUMNS = 340  # faces per mosaic row: 16,320 px wide, under PNG decoders' usual limits


def pack(labels: Path, wheel: Path, out: Path, split: str) -> None:
    table = pd.read_csv(labels)
    rows = table[table["split"] == split].reset_index(drop=True)
    faces = np.stack([np.asarray(Image.open(labels.parent / p).convert("L")) for p in rows["path"]])
    if faces.shape[1:] != (SIDE, SIDE):
        raise SystemExit(f"{labels}: faces of shape {faces.shape[1:]}, this packer expects {SIDE}x{SIDE}")
    n_rows = -(-len(faces) // COLUMNS)
    grid = np.zeros((n_rows * COLUMNS, SIDE, SIDE), np.uint8)
    grid[: len(faces)] = faces
    mosaic = grid.reshape(n_rows, COLUMNS, SIDE, SIDE).transpose(0, 2, 1, 3).reshape(n_rows * SIDE, COLUMNS * SIDE)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mosaic).save(out / "faces.png", optimize=True)
    rows.to_csv(out / "labels.csv.gz", index=False)
    with zipfile.ZipFile(wheel) as whl, tarfile.open(out / "faiss.tar.xz", "w:xz", preset=9) as tar:
        for member in whl.infolist():
            if member.is_dir():
                continue
            info = tarfile.TarInfo(member.filename)
            info.size, info.mode = member.file_size, 0o755
            tar.addfile(info, io.BytesIO(whl.read(member)))
    total = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"{len(rows)} {split} faces and faiss packed into {out}: {total:.1f} MiB")


def unpack(carry: Path, dest: Path) -> None:
    rows = pd.read_csv(carry / "labels.csv.gz")
    mosaic = np.asarray(Image.open(carry / "faces.png"))
    columns = mosaic.shape[1] // SIDE
    faces = mosaic.reshape(-1, SIDE, columns, SIDE).transpose(0, 2, 1, 3).reshape(-1, SIDE, SIDE)
    root = dest / "ferplus"
    for folder in {str(Path(p).parent) for p in rows["path"]}:
        (root / folder).mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        path = root / rows["path"][i]
        Image.fromarray(faces[i]).save(path)
        if not np.array_equal(np.asarray(Image.open(path)), faces[i]):
            raise SystemExit(f"{path}: the written face differs from the packed one")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(len(rows))))
    rows.to_csv(root / "labels.csv", index=False)
    with tarfile.open(carry / "faiss.tar.xz") as tar:
        tar.extractall(dest / "site", filter="data")
    print(f"{len(rows)} faces in {root}; faiss in {dest / 'site'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--labels", type=Path, default=Path("../shared/data/ferplus/labels.csv"))
    p.add_argument("--faiss-wheel", type=Path, required=True)
    p.add_argument("--split", default="Training")
    p.add_argument("--out", type=Path, default=Path(".gpucarry"))
    u = sub.add_parser("unpack")
    u.add_argument("carry", type=Path)
    u.add_argument("dest", type=Path)
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.labels, args.faiss_wheel, args.out, args.split)
    else:
        unpack(args.carry, args.dest)


if __name__ == "__main__":
    main()
