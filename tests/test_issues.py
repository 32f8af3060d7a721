"""Per-face data issues: duplicate groups, conflicting duplicates, leaks, near duplicates, outliers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from curate import records
from curate.data.duplicates import pixel_facts
from curate.data.table import make_table
from curate.scoring.issues import (
    CONFLICT_REASON,
    OUTLIER_FLAG,
    class_distance,
    embedding_outlier_score,
    find_issues,
    pixel_outlier_score,
)

CLASSES = ["angry", "happy", "sad"]


def _faces(tmp_path, spec):
    """spec: (name, image kind or seed, label, split) -> LabelTable. kind: int seed = smooth random
    'photo', 'const' = one value, 'noise' = white noise, 'digit' = a drawn digit on a blank."""
    paths = []
    for name, kind, _, _ in spec:
        if kind == "const":
            px = np.full((24, 24), 90, np.uint8)
        elif kind == "noise":
            px = np.random.default_rng(len(name)).integers(0, 256, (24, 24), dtype=np.uint8)
        elif kind == "digit":
            from PIL import ImageDraw

            img = Image.new("L", (24, 24), 255)
            ImageDraw.Draw(img).text((8, 4), "7", fill=0)
            px = np.asarray(img)
        else:  # a smooth random image: low-frequency noise, upsampled
            small = np.random.default_rng(kind).integers(0, 256, (6, 6), dtype=np.uint8)
            px = np.asarray(Image.fromarray(small, "L").resize((24, 24), Image.BILINEAR))
        path = tmp_path / f"{name}.png"
        Image.fromarray(px, "L").save(path)
        paths.append(str(path))
    return make_table(
        [s[0] for s in spec], paths, [CLASSES.index(s[2]) for s in spec], CLASSES, split=[s[3] for s in spec]
    )


def test_pixel_checks_flag_constant_nearly_constant_and_noise(tmp_path):
    table = _faces(
        tmp_path,
        [("p", 1, "happy", "t"), ("c", "const", "sad", "t"), ("n", "noise", "sad", "t"), ("d", "digit", "sad", "t")],
    )
    score, kind = pixel_outlier_score(pixel_facts(table["filepath"].tolist(), workers=1, progress=False))
    assert kind.tolist() == ["", "constant", "no_structure", "nearly_constant"]
    assert score[0] == 0 and score[1] == 1 and (score[2:] >= OUTLIER_FLAG).all()


def test_embedding_outlier_score_flags_faces_far_from_every_class_even_in_a_cluster():
    rng = np.random.default_rng(0)
    d, per = 16, 100
    centres = rng.normal(size=(3, d)) * 4
    labels = np.repeat(np.arange(3), per)
    emb = centres[labels] + rng.normal(size=(3 * per, d))
    far = rng.normal(size=d) * 4  # 12 planted faces in a tight cluster of their own, random labels
    emb = np.vstack([emb, far + 0.05 * rng.normal(size=(12, d)), np.zeros((1, d))]).astype(np.float32)
    labels = np.concatenate([labels, rng.integers(0, 3, 12), [0]])
    from curate.scoring.pipeline import class_means

    dist = class_distance(emb, class_means(emb, labels, 3))
    assert np.isnan(dist[-1])  # all-zero embedding
    score = embedding_outlier_score(dist)
    assert score[-1] == 1.0 and score.min() >= 0 and score.max() <= 1
    planted = np.zeros(len(emb), bool)
    planted[3 * per : -1] = True
    assert score[planted].min() > np.quantile(score[~planted][:-1], 0.95)
    assert np.median(score[: 3 * per]) < 0.05


def test_find_issues_per_face(tmp_path):
    spec = [
        ("a1", 1, "happy", "train"),
        ("a2", 1, "happy", "train"),  # duplicate
        ("b1", 2, "happy", "train"),
        ("b2", 2, "sad", "test"),  # conflicting and leaking
        ("c1", 3, "angry", "train"),
        ("c2", 4, "angry", "test"),  # near duplicate of c1 across splits (by the neighbour arrays)
        ("x", "const", "sad", "train"),  # outlier
        ("y", 5, "sad", "train"),
    ]
    table = _faces(tmp_path, spec)
    facts = pixel_facts(table["filepath"].tolist(), workers=1, progress=False)
    n = len(table)
    idx = np.array([[1, 2], [0, 2], [3, 0], [2, 0], [5, 0], [4, 0], [0, 1], [0, 1]])
    sims = np.array(
        [[1.0, 0.5], [1.0, 0.5], [1.0, 0.4], [1.0, 0.4], [0.998, 0.5], [0.998, 0.5], [0.3, 0.3], [0.6, 0.6]]
    )
    verdict = np.array(["ok"] * n, dtype=object)
    verdict[7] = "ambiguous"
    reasons = np.array([""] * n, dtype=object)
    reasons[3] = "mislabel_score"
    out = find_issues(table, facts, idx, sims, verdict, reasons, CLASSES, near_threshold=0.995)
    g = out.duplicate_group
    assert g[0] == g[1] >= 0 and g[2] == g[3] >= 0 and g[0] != g[2] and (g[4:] == -1).all()
    assert out.verdict[2] == out.verdict[3] == "likely_mislabeled"
    assert out.reasons[2] == CONFLICT_REASON and out.reasons[3] == f"mislabel_score;{CONFLICT_REASON}"
    assert out.verdict[0] == "ok" and out.verdict[7] == "ambiguous"
    assert out.near_duplicates[4] == ["c2"] and out.near_duplicates[5] == ["c1"]
    assert out.near_duplicates[0] == []  # its exact copy is a duplicate, not a near duplicate
    assert out.issues[0] == ["duplicate"]
    assert out.issues[2] == ["label", "duplicate", "conflicting_duplicate", "leak"]
    assert out.issues[4] == ["leak", "near_duplicate"]
    assert "outlier" in out.issues[6] and out.outlier_score[6] == 1.0
    assert out.issues[7] == ["ambiguous"]
    assert all(set(i) <= set(records.ISSUES) for i in out.issues)
    assert out.near_pairs == 1 and out.near_leakage == {"train | test": 1}
    summary = out.to_dict()
    assert summary["issues"]["conflicting_duplicate"] == 2 and summary["duplicates"]["cross_split_groups"] == 1
    assert "data issues:" in "\n".join(out.summary_lines())


def test_reference_rows_count_as_leaks(tmp_path):
    scored = _faces(tmp_path, [("a", 1, "happy", "train"), ("b", 2, "sad", "train")])
    (tmp_path / "o").mkdir()
    other = _faces(tmp_path / "o", [("a_test", 1, "happy", "test")])
    facts = pixel_facts(scored["filepath"].tolist(), workers=1, progress=False)
    ref_facts = pixel_facts(other["filepath"].tolist(), workers=1, progress=False)
    idx, sims = np.array([[1], [0]]), np.array([[0.1], [0.1]])
    verdict, reasons = np.array(["ok", "ok"], dtype=object), np.array(["", ""], dtype=object)
    out = find_issues(scored, facts, idx, sims, verdict, reasons, CLASSES, reference=other, reference_facts=ref_facts)
    assert out.issues[0] == ["duplicate", "leak"] and out.issues[1] == []
    assert out.duplicates.leakage == {"train | test": {"groups": 1, "train": 1, "test": 1}}


def test_old_scores_files_read_with_issue_defaults(tmp_path):
    n = 3
    df = pd.DataFrame({
        "sample_id": list("abc"), "filepath": list("abc"), "split": ["t"] * n, "given_label": [0, 1, 0],
        **{c: [np.array([0.5, 0.5], np.float32)] * n for c in records.VECTOR_COLUMNS},
        "uncertainty": [0.5] * n, "mislabel_score": [0.1] * n, "ambiguity_score": [0.1] * n,
        "suggested_label": [0, 1, 0], "knn_disagreement": [0.0] * n, "neighbors": [[]] * n,
        "verdict": ["ok"] * n, "reasons": [""] * n,
    })  # fmt: skip
    path = records.write_scores(tmp_path / "s.parquet", df, 2, {"classes": ["x", "y"]})
    back = records.read_scores(path)
    assert back["duplicate_group"].tolist() == [-1] * n and back["issues"].map(list).tolist() == [[]] * n
    # a file written before the issue columns existed
    import pyarrow.parquet as pq

    table = pq.read_table(path).drop_columns(list(records.ISSUE_COLUMNS))
    pq.write_table(table, tmp_path / "old.parquet")
    old = records.read_scores(tmp_path / "old.parquet", columns=["sample_id", "outlier_score", "near_duplicates"])
    assert old["outlier_score"].tolist() == [0.0] * n and old["near_duplicates"].tolist() == [[]] * n
