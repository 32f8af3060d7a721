"""The simulated-curator suite: queues reviewed in batches, errors counted, results written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curate.benchmark.curator_suite import CuratorSuiteConfig, load, run_curator_suite, simulate
from curate.data.table import FER2013_CLASSES


def fake_run(tmp_path, n: int = 700, seed: int = 0):
    """A run folder (scores.parquet, its embeddings, classes.json) on ``n`` FER2013-class faces and
    the FERPlus-style labels.csv with the truth; the stored score ranks errors better than chance."""
    rng = np.random.default_rng(seed)
    C = len(FER2013_CLASSES)
    crowd = rng.integers(0, C, n)
    wrong = rng.random(n) < 0.3
    given = np.where(wrong, (crowd + rng.integers(1, C, n)) % C, crowd)
    score = np.clip(0.3 + 0.4 * wrong + rng.normal(0, 0.2, n), 0.01, 0.99)
    dist = rng.dirichlet(np.ones(C), n)
    dist[np.arange(n), given] = 0
    dist = dist / dist.sum(1, keepdims=True) * score[:, None]
    dist[np.arange(n), given] = 1 - score
    paths = [f"images/f{i}.png" for i in range(n)]
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({
        "sample_id": paths, "filepath": [str(tmp_path / p) for p in paths], "given_label": given.astype(np.int32),
        "target_probs": list(dist.astype(np.float32)), "label_distribution": list(dist.astype(np.float32)),
        "mislabel_score": score.astype(np.float32),
        "neighbors": [[paths[j] for j in rng.choice(n, 5, replace=False) if j != i] for i in range(n)],
    }).to_parquet(run / "scores.parquet")  # fmt: skip
    np.save(run / "scores.embeddings.npy", (np.eye(C)[crowd] + rng.normal(0, 0.3, (n, C))).astype(np.float16))
    (run / "classes.json").write_text(json.dumps(list(FER2013_CLASSES)))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": paths, "fer2013_label": given, "ferplus_label": crowd,
                  "label_disagrees": wrong.astype(int)}).to_csv(labels, index=False)  # fmt: skip
    return run, labels, score, wrong


def test_simulate_reviews_the_top_of_the_queue_batch_by_batch():
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])
    wrong = np.array([True, False, False, True, True, False])
    crowd, given = np.array([1, 0, -1, 2, 1, 0]), np.zeros(6, int)
    rows = simulate(lambda d, dec: (score, np.eye(3)[given]), 6, 2, [2, 4], crowd, wrong, given)
    found = {r["reviewed"]: (r["errors_found"], r["no_plurality"]) for r in rows if r.get("curve") is None}
    assert found == {2: (1, 1), 4: (2, 1)}  # faces 0, 2 (no plurality), then 4, 5
    with pytest.raises(ValueError, match="exceeds the 6 faces"):
        simulate(lambda d, dec: (score, np.eye(3)[given]), 6, 4, [7], crowd, wrong, given)


def test_curator_suite_writes_every_queue_and_counts_errors(tmp_path):
    run, labels, score, wrong = fake_run(tmp_path)
    cfg = CuratorSuiteConfig(labels_csv=labels, out=tmp_path / "out", run_dir=run, batch=100,
                             checkpoints=(200, 400, 10_000), weights=(1.0,))  # fmt: skip
    record = run_curator_suite(cfg, log=lambda _: None)
    rows = pd.DataFrame(record["rows"])
    assert set(rows["reviewed"]) == {200, 400}  # a checkpoint beyond the faces is dropped
    static = rows[rows.method == "static"].set_index("reviewed")["errors_found"]
    top = np.argsort(-score, kind="stable")
    assert static[400] == wrong[top[:400]].sum()
    assert {"rerank w=1", "rerank w=1, no head refit", "rerank w=1, head without noise model", "calibration oracle",
            "embedding oracle", "cleanlab self_confidence"} <= set(rows.method)  # fmt: skip
    # the embeddings hold the crowd label (fake_run): a head fitted on half the crowd labels finds
    # more errors than the stored score
    found = rows[rows.reviewed == 200].set_index("method")["errors_found"]
    assert found["embedding oracle"] > found["static"]
    assert (rows["errors_found"] <= rows["reviewed"]).all()
    md = (tmp_path / "out" / "curator.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == len(rows) + 1  # the header and a row each
    assert (tmp_path / "out" / "curator.png").stat().st_size > 0


def test_a_run_on_other_classes_is_refused_and_another_order_is_mapped(tmp_path):
    run, labels, _, wrong = fake_run(tmp_path, n=50)
    scores = pd.read_parquet(run / "scores.parquet")
    order = sorted(FER2013_CLASSES)  # how a run on a CSV of class names orders them
    to_run = np.array([order.index(c) for c in FER2013_CLASSES])
    scores["given_label"] = to_run[scores["given_label"]].astype(np.int32)
    scores.to_parquet(run / "scores.parquet")
    (run / "classes.json").write_text(json.dumps(order))
    _, crowd, judged = load(run, labels)
    assert np.array_equal(crowd, to_run[pd.read_csv(labels)["ferplus_label"]]) and np.array_equal(judged, wrong)
    (run / "classes.json").write_text(json.dumps([*order[:-1], "contempt"]))
    with pytest.raises(ValueError, match="not FER2013's"):
        run_curator_suite(CuratorSuiteConfig(labels_csv=labels, out=tmp_path / "o", run_dir=run), log=lambda _: None)


def test_a_flip_setting_is_judged_by_its_own_labels(tmp_path):
    """A flips-suite train.csv: the given labels are ``label`` (names); ``fer2013_label`` is FER2013's,
    which the run was not given, and the truth is the crowd plurality."""
    run, labels, _, wrong = fake_run(tmp_path, n=300)
    table = pd.read_csv(labels)
    given = pd.read_parquet(run / "scores.parquet")["given_label"].to_numpy()
    table["label"] = [FER2013_CLASSES[g] for g in given]
    table["fer2013_label"] = (given + 1) % len(FER2013_CLASSES)  # not what the run was given
    table.loc[:9, "ferplus_label"] = -1  # no plurality: decided, never an error
    flips = tmp_path / "train.csv"
    table.drop(columns="label_disagrees").to_csv(flips, index=False)
    cfg = CuratorSuiteConfig(labels_csv=flips, out=tmp_path / "out", run_dir=run, batch=100, checkpoints=(200,))
    record = run_curator_suite(cfg, log=lambda _: None)
    assert record["errors"] == int(wrong[10:].sum())
    table["label"] = FER2013_CLASSES[0]
    table.to_csv(flips, index=False)
    with pytest.raises(ValueError, match="are not the labels of"):
        run_curator_suite(cfg, log=lambda _: None)
