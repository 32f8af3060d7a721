"""Exact duplicates by decoded pixels, and the leakage they cause across splits.

Two images are exact duplicates when their *decoded* pixels are identical (file bytes may differ:
another PNG compression level, another container, metadata). Each image is decoded once
(:func:`pixel_facts`, a thread pool; PIL's decoders release the GIL) into a canonical array: EXIF
rotation applied, 8-bit, grey when all channels are equal (so a grey PNG and the same picture saved
as RGB match), else RGB; alpha dropped. The digest is BLAKE2b-128 of the shape and those bytes.
The same pass measures the pixel statistics the outlier check uses (standard deviation, share of
the most common value).

Duplicate groups are the digests shared by two or more rows. A group is *conflicting* when its
labelled faces carry more than one label (at least one of them is wrong) and *cross-split* when
its faces lie in more than one split (a test face that is also a training face: leakage, counted
per split pair).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

from curate.data.images import PathLike, file_problem, to_rgb

NO_GROUP = -1


@dataclass(frozen=True)
class PixelFacts:
    """One decoded image: ``digest`` (hex, None when it cannot be decoded), ``problem`` (why not),
    ``std`` (standard deviation of the canonical pixels, 0-255), ``mode_share`` (share of the
    pixels holding the most common value) and ``smoothness`` (correlation of horizontally adjacent
    grey values: about 0.9 or more for photographs, about 0 for noise; 1 for constant images)."""

    digest: str | None
    problem: str | None = None
    std: float = float("nan")
    mode_share: float = float("nan")
    smoothness: float = float("nan")


def canonical_pixels(img: Image.Image) -> np.ndarray:
    """(H, W) uint8 for grey content, (H, W, 3) uint8 for colour: see the module docstring."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("L", "1") or img.mode.startswith("I") or img.mode == "F":
        return np.asarray(to_rgb(img).getchannel(0) if img.mode != "L" else img, dtype=np.uint8)
    rgb = np.asarray(to_rgb(img), dtype=np.uint8)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0])
    return rgb


def pixel_digest(pixels: np.ndarray) -> str:
    """BLAKE2b-128 hex digest of a canonical pixel array and its shape."""
    h = hashlib.blake2b(digest_size=16)
    h.update("x".join(map(str, pixels.shape)).encode() + b":")
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def pixel_fact(path: PathLike) -> PixelFacts:
    """Decode ``path`` once: its digest and pixel statistics, or the problem that stopped it."""
    problem = file_problem(path)
    if problem:
        return PixelFacts(None, problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()
                pixels = canonical_pixels(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return PixelFacts(None, f"image cannot be decoded ({exc})")
    flat = pixels.reshape(-1)
    share = float(np.bincount(flat).max() / flat.size) if flat.size else 1.0
    std = float(flat.std()) if flat.size else 0.0
    return PixelFacts(pixel_digest(pixels), None, std, share, _smoothness(pixels))


def _smoothness(pixels: np.ndarray) -> float:
    grey = pixels.mean(axis=2) if pixels.ndim == 3 else pixels.astype(np.float64)
    if grey.shape[1] < 2:
        return 1.0
    a, b = grey[:, :-1].ravel(), grey[:, 1:].ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0
    return float(np.corrcoef(a, b)[0, 1])


PROBE = 256  # images decoded each way before pixel_facts picks threads or a plain loop


def pixel_facts(paths: Sequence[PathLike], *, workers: int = 4, progress: bool = True) -> list[PixelFacts]:
    """:func:`pixel_fact` of every path, in order (tqdm bar on a terminal).

    With ``workers`` > 1 and at least ``4 * PROBE`` paths, the first ``PROBE`` images are decoded in
    this thread and the next ``PROBE`` by ``workers`` threads, and the faster way does the rest:
    threads pay for large images, whose decoding releases the GIL (256 px PNGs: 1.3x with 2 threads),
    and cost for small ones, where they mostly wait for the GIL (48 px: a plain loop 2.9x faster
    than 4 threads; measured 2026-12-04, docs/scale.md). The result does not depend on the choice."""
    workers = max(1, min(workers, (os.cpu_count() or 1) * 2))
    paths = list(paths)
    bar = tqdm(total=len(paths), desc="hash pixels", unit="img", disable=None if progress else True, leave=False)
    facts: list[PixelFacts] = []
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:

        def serial(chunk: list[PathLike]) -> float:
            start = time.perf_counter()
            for path in chunk:
                facts.append(pixel_fact(path))
                bar.update()
            return time.perf_counter() - start

        def threaded(chunk: list[PathLike]) -> float:
            start = time.perf_counter()
            for fact in pool.map(pixel_fact, chunk, chunksize=16):
                facts.append(fact)
                bar.update()
            return time.perf_counter() - start

        if workers == 1 or len(paths) < 4 * PROBE:
            serial(paths)
        else:
            serial_s = serial(paths[:PROBE])
            threaded_s = threaded(paths[PROBE : 2 * PROBE])
            (threaded if threaded_s < serial_s else serial)(paths[2 * PROBE :])
    return facts


@dataclass
class DuplicateReport:
    """Exact-duplicate groups of a table.

    ``group``: (N,) int, the row's group id (0.. in order of first appearance) or -1.
    ``groups``: one row per group: group, size, sample_ids (list), labels (sorted names of the
    labelled faces), splits (in table order), conflicting, cross_split.
    ``leakage``: {"A | B": {"groups": n, "A": faces of A, "B": faces of B}} per split pair that
    shares a group. ``undecoded``: rows that could not be decoded (no digest, never grouped)."""

    group: np.ndarray
    groups: pd.DataFrame
    leakage: dict[str, dict[str, int]] = field(default_factory=dict)
    undecoded: int = 0

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_faces(self) -> int:
        return int(self.groups["size"].sum()) if len(self.groups) else 0

    @property
    def conflicting(self) -> int:
        return int(self.groups["conflicting"].sum()) if len(self.groups) else 0

    @property
    def cross_split(self) -> int:
        return int(self.groups["cross_split"].sum()) if len(self.groups) else 0

    def size_histogram(self) -> dict[int, int]:
        """{group size: number of groups}."""
        return {int(k): int(v) for k, v in self.groups["size"].value_counts().sort_index().items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.n_groups,
            "faces": self.n_faces,
            "extra_copies": self.n_faces - self.n_groups,
            "sizes": {str(k): v for k, v in self.size_histogram().items()},
            "conflicting_groups": self.conflicting,
            "cross_split_groups": self.cross_split,
            "leakage": self.leakage,
            "undecoded": self.undecoded,
        }

    def summary_lines(self) -> list[str]:
        """Plain-text lines for ``curate inspect`` and the run summary."""
        if not self.n_groups:
            return ["exact duplicates (decoded pixels): none"]
        sizes = ", ".join(f"{n} of size {s}" for s, n in self.size_histogram().items())
        lines = [
            f"exact duplicates (decoded pixels): {self.n_groups:,} groups covering {self.n_faces:,} faces "
            f"({self.n_faces - self.n_groups:,} extra copies; {sizes})",
            f"  with conflicting labels: {self.conflicting:,} groups",
            f"  spanning more than one split: {self.cross_split:,} groups",
        ]
        for pair, counts in self.leakage.items():
            a, b = pair.split(" | ")
            lines.append(
                f"  leakage {a} <-> {b}: {counts['groups']:,} groups ({counts[a]:,} {a} faces, {counts[b]:,} {b} faces)"
            )
        if self.undecoded:
            lines.append(f"  {self.undecoded} image(s) could not be decoded and were not compared")
        return lines


def find_duplicates(
    digests: Sequence[str | None],
    labels: Sequence[int] | np.ndarray,
    splits: Sequence[str],
    sample_ids: Sequence[str],
    classes: Sequence[str],
) -> DuplicateReport:
    """Group rows by digest (None = undecoded, never grouped); labels < 0 are unlabeled."""
    digests = pd.Series(list(digests), dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.asarray([str(s) for s in splits], dtype=object)
    sample_ids = np.asarray([str(s) for s in sample_ids], dtype=object)
    known = digests.notna().to_numpy()
    codes = np.full(len(digests), NO_GROUP, dtype=np.int64)
    if known.any():
        codes[known] = pd.factorize(digests[known], sort=False)[0]
    counts = np.bincount(codes[known]) if known.any() else np.zeros(0, dtype=np.int64)
    repeated = known & (counts[np.maximum(codes, 0)] > 1 if len(counts) else False)
    # renumber the repeated digests 0.. in order of first appearance
    group = np.full(len(digests), NO_GROUP, dtype=np.int64)
    if repeated.any():
        group[repeated] = pd.factorize(codes[repeated], sort=False)[0]
    split_order = {s: i for i, s in enumerate(dict.fromkeys(splits))}
    rows = []
    leakage: dict[str, dict[str, int]] = {}
    members = pd.Series(np.flatnonzero(repeated)).groupby(group[repeated], sort=True) if repeated.any() else []
    for g, idx in members:
        idx = idx.to_numpy()
        labelled = labels[idx][labels[idx] >= 0]
        names = sorted({classes[i] if 0 <= i < len(classes) else str(i) for i in labelled})
        spl = sorted(set(splits[idx]), key=split_order.get)
        rows.append(
            {
                "group": int(g),
                "size": len(idx),
                "sample_ids": list(sample_ids[idx]),
                "labels": names,
                "splits": spl,
                "conflicting": len(set(labelled.tolist())) > 1,
                "cross_split": len(spl) > 1,
            }
        )
        for a, b in combinations(spl, 2):
            key = f"{a} | {b}"
            entry = leakage.setdefault(key, {"groups": 0, a: 0, b: 0})
            entry["groups"] += 1
            entry[a] += int((splits[idx] == a).sum())
            entry[b] += int((splits[idx] == b).sum())
    columns = ["group", "size", "sample_ids", "labels", "splits", "conflicting", "cross_split"]
    return DuplicateReport(
        group=group,
        groups=pd.DataFrame(rows, columns=columns),
        leakage=leakage,
        undecoded=int((~known).sum()),
    )


def table_duplicates(df: pd.DataFrame, *, workers: int = 4, progress: bool = True) -> DuplicateReport:
    """Exact duplicates of a LabelTable, decoding every image."""
    from curate.data.table import classes_of

    facts = pixel_facts(df["filepath"].tolist(), workers=workers, progress=progress)
    return find_duplicates(
        [f.digest for f in facts], df["label"].to_numpy(), df["split"].astype(str), df["sample_id"], classes_of(df)
    )
