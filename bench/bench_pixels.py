"""The pixel pass of scoring (``curate.data.duplicates.pixel_facts``) against a plain loop over
``pixel_fact``, on synthetic faces of one size, in one run.

    python bench/bench_pixels.py --n 20000 --image-size 48 [--workdir DIR] [--repeats 2]

Generates the faces once in ``--workdir`` (``curate.data.synthetic``), reads every image once to
warm the page cache, then alternates the two ways ``--repeats`` times; prints images/s of each
and checks that both give the same hashes. ``pixel_facts`` decodes a probe both ways and keeps the
faster, so it should match the loop on small images and beat it on large ones.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--workdir", type=Path, help="keeps the generated faces (default: a temporary folder)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from curate.data.duplicates import pixel_fact, pixel_facts
    from curate.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        table = generate(args.n, root / "faces", seed=0, image_size=args.image_size)
        paths = table["filepath"].astype(str).tolist()
        loop = [pixel_fact(p) for p in paths]  # warms the page cache
        for _ in range(args.repeats):
            for name, run in (("plain loop", lambda: [pixel_fact(p) for p in paths]),
                              ("pixel_facts", lambda: pixel_facts(paths, progress=False))):  # fmt: skip
                start = time.perf_counter()
                facts = run()
                seconds = time.perf_counter() - start
                assert [f.digest for f in facts] == [f.digest for f in loop], f"{name}: other hashes"
                print(f"{args.image_size} px, {name:<12} {len(paths) / seconds:8,.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
