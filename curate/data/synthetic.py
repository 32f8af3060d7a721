"""Synthetic cartoon expression faces with known ground truth (demo dataset and test fixture).

Every face is a point ``x`` in a 5-D expression-parameter space (``PARAMETERS``: mouth
curvature, mouth openness, brow height, brow tilt, eye openness). Each class has a
prototype point (``PROTOTYPES``); a face of class ``c`` is drawn as ``prototype_c + N(0,
SPREAD^2 I)`` and kept only if ``c`` is still its nearest prototype, so its true class is
its Voronoi region and faces near a region border are genuinely ambiguous. Classes are
balanced (``n // C`` faces each, the remainder to the first classes) unless ``class_shares`` asks
for other proportions (e.g. a long tail, where a rare class is still easy to tell apart).

Ground truth per face:

* ``true_label`` -- nearest prototype (int, index into ``classes``);
* posterior ``p = softmax(-||x - prototype_k|| / TEMPERATURE)`` over the classes
  (``class_posterior``); ``ambiguity = H(p) / log(C)`` in [0, 1];
* ``votes_<class>`` -- 10 simulated annotators, each drawing one class from ``p``;
* ``expr_<parameter>`` -- the face's point ``x`` in parameter space;
* ``is_noisy`` -- exactly ``round(noise_rate * n)`` faces, chosen uniformly at random, get a
  wrong given ``label``: ``noise="uniform"`` flips to a random other class,
  ``noise="confusable"`` to the second-nearest prototype (FER-style confusions).

Nuisance variation (head shift, scale, in-plane rotation, skin/background tone,
brightness, contrast, pixel noise) keeps the task non-trivial: a linear model on pixels
gets ~70 % of clean labels right, a small 6-layer CNN ~96 % (1,600 faces, 10 epochs). Faces are drawn as polygons at 4x
(2x above 128 px) and box-downsampled for anti-aliasing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm import tqdm

from curate.data.table import FER2013_CLASSES, VOTE_PREFIX, make_table

#: Bump when the rendering or sampling changes, so cached datasets are regenerated.
GENERATOR_VERSION = 1

PARAMETERS = ("mouth_curve", "mouth_open", "brow_height", "brow_tilt", "eye_open")

#: Class prototypes in parameter space (order of ``PARAMETERS``). mouth_curve > 0 smiles,
#: brow_tilt > 0 raises the inner brow ends, eye_open < 0 squints.
PROTOTYPES: dict[str, tuple[float, ...]] = {
    "angry": (-0.4, 0.1, -0.8, -0.9, -0.2),
    "disgust": (-0.7, 0.3, -0.4, -0.2, -0.8),
    "fear": (-0.3, 0.6, 0.6, 0.8, 0.8),
    "happy": (0.9, 0.4, 0.0, 0.0, -0.3),
    "sad": (-0.8, 0.0, 0.0, 0.9, -0.4),
    "surprise": (0.0, 1.0, 1.0, 0.0, 1.0),
    "neutral": (0.0, 0.0, 0.0, 0.0, 0.0),
}

#: Per-parameter std of a face around its class prototype (prototypes are ~1.0 apart).
SPREAD = 0.3
#: Softmax temperature (in parameter-space distance units) of ``class_posterior``.
TEMPERATURE = 0.2
N_ANNOTATORS = 10

PARAM_PREFIX = "expr_"
IMAGE_DIR = "images"
LABELS_CSV = "labels.csv"
MANIFEST = "manifest.json"

_CIRCLE = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)


def prototypes(classes: Sequence[str]) -> np.ndarray:
    """(C, P) float64 prototype matrix for ``classes``; ValueError for unknown class names."""
    unknown = [c for c in classes if c not in PROTOTYPES]
    if unknown:
        raise ValueError(f"no synthetic prototype for classes {unknown}; use a subset of {list(PROTOTYPES)}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be >= 2 distinct names, got {list(classes)}")
    return np.array([PROTOTYPES[c] for c in classes], dtype=np.float64)


def class_posterior(params: np.ndarray, protos: np.ndarray, *, temperature: float = TEMPERATURE) -> np.ndarray:
    """(N, C) softmax over ``-distance / temperature`` of (N, P) ``params`` to (C, P) prototypes."""
    dist = np.linalg.norm(params[:, None, :] - protos[None, :, :], axis=2)
    logits = -dist / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def normalized_entropy(p: np.ndarray) -> np.ndarray:
    """(N,) entropy of the rows of (N, C) probabilities divided by log(C), in [0, 1]."""
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.clip(-plogp.sum(axis=1) / np.log(p.shape[1]), 0.0, 1.0)


def class_counts(n: int, shares: Sequence[float]) -> np.ndarray:
    """(C,) int faces per class summing to ``n``, proportional to ``shares`` (>= 0, not all 0):
    largest remainders get the faces rounding leaves over."""
    w = np.asarray(shares, dtype=np.float64)
    if w.ndim != 1 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"class_shares must be finite numbers >= 0, not all 0, got {list(shares)}")
    exact = w / w.sum() * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return counts


def sample_parameters(
    n: int, protos: np.ndarray, rng: np.random.Generator, shares: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi-truncated Gaussian samples: (n, P) params and (n,) int64 true labels; balanced
    classes, or faces per class as ``class_counts(n, shares)`` in random order."""
    n_classes = len(protos)
    if shares is None:
        labels = np.arange(n) % n_classes
    else:
        if len(shares) != n_classes:
            raise ValueError(f"{len(shares)} class shares for {n_classes} classes")
        labels = rng.permutation(np.repeat(np.arange(n_classes), class_counts(n, shares)))
    params = np.empty((n, protos.shape[1]))
    todo = np.arange(n)
    while todo.size:
        draw = protos[labels[todo]] + rng.normal(0.0, SPREAD, (todo.size, protos.shape[1]))
        nearest = np.linalg.norm(draw[:, None, :] - protos[None], axis=2).argmin(axis=1)
        ok = nearest == labels[todo]
        params[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return params, labels.astype(np.int64)


def _noisy_labels(
    true_label: np.ndarray,
    params: np.ndarray,
    protos: np.ndarray,
    rate: float,
    kind: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Given labels with exactly round(rate * n) flips away from ``true_label``."""
    n, n_classes = len(true_label), len(protos)
    flip = rng.choice(n, size=int(round(rate * n)), replace=False)
    label = true_label.copy()
    if kind == "uniform":
        label[flip] = (true_label[flip] + rng.integers(1, n_classes, size=flip.size)) % n_classes
    else:
        dist = np.linalg.norm(params[flip, None, :] - protos[None], axis=2)
        label[flip] = np.argsort(dist, axis=1)[:, 1]
    return label


def _check_splits(splits: Mapping[str, float]) -> None:
    fractions = np.array(list(splits.values()), dtype=np.float64)
    if not splits or (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise ValueError(f"splits must map names to fractions >= 0 summing to 1, got {dict(splits)}")


def _split_names(n: int, splits: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    """(n,) split names in the given proportions (rounded), randomly assigned."""
    fractions = np.array(list(splits.values()), dtype=np.float64)
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    names = np.repeat(np.array(list(splits), dtype=object), np.diff(bounds, prepend=0))
    return names[rng.permutation(n)]


def render_face(params: np.ndarray, rng: np.random.Generator, *, image_size: int = 48) -> np.ndarray:
    """(image_size, image_size) uint8 grayscale face for (P,) ``params`` with random nuisances."""
    ss = 4 if image_size <= 128 else 2
    big = image_size * ss
    curve, mouth_open, brow_h, tilt, eye_open = np.clip(params, -1.5, 1.5)
    mouth_open = max(mouth_open, 0.0)

    background = rng.uniform(20, 110)
    skin = rng.uniform(140, 225)
    ink = rng.uniform(0, 50)
    img = Image.new("L", (big, big), int(background))
    draw = ImageDraw.Draw(img)

    cx = big / 2 + rng.uniform(-0.04, 0.04) * big
    cy = big / 2 + rng.uniform(-0.04, 0.04) * big
    u = 0.33 * big * rng.uniform(0.9, 1.08)  # face half-width; feature coordinates in units of u
    angle = np.deg2rad(rng.uniform(-8, 8))
    rot = u * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def shape(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        """Face coordinates (units of u, y down) -> rotated, shifted pixel polygon."""
        xy = rot @ np.stack([x, y]) + np.array([[cx], [cy]])
        return list(map(tuple, xy.T))

    def ellipse(x0: float, y0: float, rx: float, ry: float) -> list[tuple[float, float]]:
        return shape(x0 + rx * np.cos(_CIRCLE), y0 + ry * np.sin(_CIRCLE))

    draw.polygon(ellipse(0.0, 0.0, 1.0, 1.25), fill=int(skin))
    for side in (-1, 1):
        # eyes: height follows eye openness
        draw.polygon(ellipse(0.38 * side, -0.2, 0.17, max(0.02, 0.1 + 0.07 * eye_open)), fill=int(ink))
        # brows: inner end (near the nose) rises with tilt, whole brow rises with brow height
        by = -0.5 - 0.18 * brow_h
        brow = shape(np.array([0.14 * side, 0.62 * side]), np.array([by - 0.16 * tilt, by + 0.08 * tilt]))
        draw.line(brow, fill=int(ink), width=int(round(0.09 * u)))

    # mouth: upper lip y0 + 0.14 * curve * (1 - 2 t^2) (corners up when smiling), lower lip
    # opens by up to 0.4 in the middle
    t = np.linspace(-1.0, 1.0, 25)
    upper = 0.58 + 0.14 * curve * (1 - 2 * t**2)
    lower = upper + (0.05 + 0.4 * mouth_open) * (1 - t**2)
    x = t * (0.36 + 0.06 * curve)
    mouth = shape(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]]))
    draw.polygon(mouth, fill=int(ink), outline=int(ink), width=max(1, int(round(0.07 * u))))
    img = img.resize((image_size, image_size), Image.Resampling.BOX)

    pixels = np.asarray(img, dtype=np.float32)
    pixels = (pixels - 128) * rng.uniform(0.7, 1.2) + 128 + rng.uniform(-25, 25)
    pixels += rng.normal(0.0, rng.uniform(2, 8), pixels.shape)
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _write_png(pixels: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)


def _write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _to_table(frame: pd.DataFrame, out_dir: Path, classes: list[str]) -> pd.DataFrame:
    """LabelTable from the labels.csv frame (so fresh and cached calls return equal tables)."""
    index = {c: i for i, c in enumerate(classes)}
    extra_cols = ["true_label", "ambiguity", "is_noisy"] + [VOTE_PREFIX + c for c in classes]
    extra_cols += [PARAM_PREFIX + p for p in PARAMETERS]
    return make_table(
        sample_id=frame["path"],
        filepath=[str(out_dir / p) for p in frame["path"]],
        label=[index[name] for name in frame["label"]],
        classes=classes,
        split=frame["split"].tolist(),
        source=str(out_dir / LABELS_CSV),
        fmt="synthetic",
        extra=frame[extra_cols],
    )


def generate(
    n: int,
    out_dir: Path,
    *,
    seed: int = 0,
    noise_rate: float = 0.3,
    noise: Literal["uniform", "confusable"] = "confusable",
    image_size: int = 48,
    splits: Mapping[str, float] | None = None,
    classes: Sequence[str] = FER2013_CLASSES,
    class_shares: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Write ``n`` synthetic faces to ``out_dir`` and return their LabelTable.

    Files: ``images/face_<i>.png`` (uint8 grayscale, image_size^2), ``labels.csv`` (columns
    path [relative], label [given class name, noisy], split, true_label [int], ambiguity
    [float, 0..1], is_noisy [bool], votes_<class> [int, sum 10], expr_<parameter> [float])
    and ``manifest.json``. A call whose arguments match the manifest reuses the files
    without rewriting them; otherwise everything is regenerated (atomic file writes).

    The returned table's ``label`` is the noisy given label (int64); extra columns
    true_label (int64), ambiguity, is_noisy, votes_<class> and expr_<parameter>.
    ``splits`` defaults to {"train": 0.8, "val": 0.1, "test": 0.1}. ``class_shares`` (C,):
    the true classes' proportions in the order of ``classes`` (default: balanced). Deterministic
    given all arguments.
    """
    splits = dict(splits) if splits is not None else {"train": 0.8, "val": 0.1, "test": 0.1}
    classes = [str(c) for c in classes]
    protos = prototypes(classes)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    if noise not in ("uniform", "confusable"):
        raise ValueError(f"noise must be 'uniform' or 'confusable', got {noise!r}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
    _check_splits(splits)
    if class_shares is not None:
        if len(class_shares) != len(classes):
            raise ValueError(f"{len(class_shares)} class shares for {len(classes)} classes {classes}")
        class_counts(n, class_shares)  # raises on shares that are not proportions

    out_dir = Path(out_dir).resolve()
    manifest = {
        "version": GENERATOR_VERSION, "n": n, "seed": seed, "noise_rate": noise_rate, "noise": noise,
        "image_size": image_size, "splits": splits, "classes": classes,
    }  # fmt: skip
    if class_shares is not None:  # absent when balanced, so earlier balanced datasets stay valid
        manifest["class_shares"] = [float(w) for w in class_shares]
    manifest_path, csv_path = out_dir / MANIFEST, out_dir / LABELS_CSV
    if _read_manifest(manifest_path) == manifest and csv_path.exists():
        frame = pd.read_csv(csv_path)
        if len(frame) == n and all((out_dir / p).exists() for p in frame["path"]):
            return _to_table(frame, out_dir, classes)

    manifest_path.unlink(missing_ok=True)  # an interrupted regeneration must not look valid
    (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params, true_label = sample_parameters(n, protos, rng, class_shares)
    posterior = class_posterior(params, protos)
    votes = rng.multinomial(N_ANNOTATORS, posterior)
    label = _noisy_labels(true_label, params, protos, noise_rate, noise, rng)
    split = _split_names(n, splits, rng)

    paths = [f"{IMAGE_DIR}/face_{i:06d}.png" for i in range(n)]
    for i in tqdm(range(n), desc="synthetic faces", disable=n <= 500):
        face = render_face(params[i], np.random.default_rng([seed, i]), image_size=image_size)
        _write_png(face, out_dir / paths[i])
    keep = {Path(p).name for p in paths}
    for stale in (out_dir / IMAGE_DIR).glob("face_*.png"):
        if stale.name not in keep:
            stale.unlink()

    frame = pd.DataFrame(
        {
            "path": paths,
            "label": [classes[i] for i in label],
            "split": split,
            "true_label": true_label,
            "ambiguity": normalized_entropy(posterior),
            "is_noisy": label != true_label,
        }
    )
    for j, c in enumerate(classes):
        frame[VOTE_PREFIX + c] = votes[:, j]
    for j, name in enumerate(PARAMETERS):
        frame[PARAM_PREFIX + name] = params[:, j]
    _write_text(frame.to_csv(index=False), csv_path)
    _write_text(json.dumps(manifest, indent=1), manifest_path)
    return _to_table(pd.read_csv(csv_path), out_dir, classes)
