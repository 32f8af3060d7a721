"""curate.rerank: decisions re-rank the undecided faces and never change a decided one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from curate.rerank import CORRECT, RerankConfig, Reranker, noise_posterior, read_decisions, rerank_scores


def table(n: int = 30, c: int = 3, seed: int = 0) -> pd.DataFrame:
    """``n`` faces on a ring: each face's neighbours are the 2 faces either side."""
    rng = np.random.default_rng(seed)
    dist = rng.dirichlet(np.ones(c) * 2, size=n).astype(np.float32)
    given = (np.arange(n) % c).astype(np.int32)
    return pd.DataFrame({
        "sample_id": [f"f{i}" for i in range(n)], "given_label": given, "label_distribution": list(dist),
        "mislabel_score": (1 - dist[np.arange(n), given]).astype(np.float32),
        "suggested_label": dist.argmax(1).astype(np.int32),
        "neighbors": [[f"f{(i + d) % n}" for d in (-2, -1, 1, 2)] for i in range(n)],
    })  # fmt: skip


def undecided_by_score(out: pd.DataFrame) -> pd.DataFrame:
    """The undecided rows of a reranked table, highest re-ranked score first (ties: table order)."""
    return out[~out["decided"]].sort_values("mislabel_score_rerank", ascending=False, kind="stable")


def test_no_decisions_keeps_the_order_and_scores():
    df = table()
    out = rerank_scores(df, {})
    assert np.allclose(out["mislabel_score_rerank"], df["mislabel_score"], atol=1e-6)
    assert (out["suggested_rerank"] == df["suggested_label"]).all()
    assert list(undecided_by_score(out).index) == list(
        df.sort_values("mislabel_score", ascending=False, kind="stable").index
    )


def test_no_decisions_keeps_a_score_that_is_not_one_minus_the_distribution():
    df = table().assign(mislabel_score=np.linspace(0, 1, 30, dtype=np.float32))
    out = rerank_scores(df, {})
    assert np.allclose(out["mislabel_score_rerank"], df["mislabel_score"], atol=1e-6)


def test_decided_faces_never_change():
    df = table()
    decisions = {"f3": 1, "f4": CORRECT, "f10": None, "f11": 2}
    out = rerank_scores(df, decisions, RerankConfig(weight=5, class_strength=2))
    decided = out["sample_id"].isin(decisions)
    assert decided.equals(out["decided"])
    assert np.array_equal(out.loc[decided, "mislabel_score_rerank"], df.loc[decided, "mislabel_score"])
    for a, b in zip(out.loc[decided, "label_distribution_rerank"], df.loc[decided, "label_distribution"]):
        assert np.array_equal(a, b)
    assert set(undecided_by_score(out)["sample_id"]).isdisjoint(decisions)
    for column in df.columns:  # original columns untouched
        assert out[column].equals(df[column])


def test_a_confirmed_error_pulls_its_neighbours_up():
    df = table()
    # f6 (given class 0) is really class 1: its neighbours not given 1 become more suspect
    out = rerank_scores(df, {"f6": 1}, RerankConfig(weight=1, class_strength=0, transition_strength=0))
    before, after = df.set_index("sample_id")["mislabel_score"], out.set_index("sample_id")["mislabel_score_rerank"]
    for nb in ("f4", "f5", "f8"):  # given 1, 2, 2 ... those not given 1 rise, f7 (given 1) falls
        if df.set_index("sample_id").loc[nb, "given_label"] != 1:
            assert after[nb] > before[nb]
    assert after["f7"] < before["f7"]
    far = [f"f{i}" for i in range(12, 30)]
    assert np.allclose(after[far], before[far], atol=1e-6)


def test_neighbours_of_many_confirmed_errors_get_the_curators_label_suggested():
    df = table()
    decisions = {f"f{i}": 2 for i in (0, 1, 3, 4)}  # f2's four neighbours are all really class 2
    out = rerank_scores(df, decisions, RerankConfig(weight=5, class_strength=0, transition_strength=0))
    row = out.set_index("sample_id").loc["f2"]
    assert row["suggested_rerank"] == 2


def test_class_update_raises_a_class_the_curator_keeps_overturning():
    df = table(n=60)
    # every decided face given class 0 was wrong; those given 1 were all right
    decisions = {f"f{i}": 1 for i in range(0, 30, 3)} | {f"f{i}": CORRECT for i in range(1, 30, 3)}
    out = rerank_scores(df, decisions, RerankConfig(weight=0, class_strength=1, transition_strength=0, shrink=5))
    open_ = ~out["decided"]
    given = out["given_label"]
    rose = out["mislabel_score_rerank"] - out["mislabel_score"]
    assert (rose[open_ & (given == 0)] > 0).all()
    assert (rose[open_ & (given == 1)] < 0).all()
    assert np.allclose(rose[open_ & (given == 2)], 0, atol=1e-6)


def test_bad_decisions_are_refused(tmp_path):
    rr = Reranker(table())
    with pytest.raises(ValueError, match="class index"):
        rr.rerank({"f1": "happy"})
    with pytest.raises(ValueError, match="outside"):
        rr.rerank({"f1": 7})
    path = tmp_path / "d.csv"
    path.write_text("sample_id,label\nf1,correct\nf2,2\nf3,\nf4,sad\n")
    assert read_decisions(path, ["angry", "happy", "sad"]) == {"f1": CORRECT, "f2": 2, "f3": None, "f4": 2}


def clustered(n_per: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Three well-separated embedding clusters (the true classes); a third of cluster 0's faces are
    given class 1, and the run's scores cannot tell them from half of the correct faces (score 0.5,
    flat distribution); the other correct faces are the run's sure ones (score 0.2)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), n_per)
    centres = np.eye(3, 8) * 4
    emb = centres[truth] + rng.normal(size=(len(truth), 8))
    given = truth.copy()
    wrong = np.flatnonzero(truth == 0)[: n_per // 3]
    given[wrong] = 1
    n = len(truth)
    dist = np.full((n, 3), 1 / 3, dtype=np.float32)
    score = np.where((np.arange(n) % 2 == 0) & (given == truth), 0.2, 0.5).astype(np.float32)
    df = pd.DataFrame({
        "sample_id": [f"f{i}" for i in range(n)], "given_label": given.astype(np.int32), "label_distribution": list(dist),
        "mislabel_score": score, "neighbors": [[] for _ in range(n)],
    })  # fmt: skip
    return df, emb.astype(np.float32), wrong


def head_case() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict, RerankConfig]:
    """:func:`clustered` with 5 of its hidden errors and 10 correct faces decided, and a config
    with the head refit alone."""
    df, emb, wrong = clustered()
    decided = np.r_[wrong[:5], np.flatnonzero(df["given_label"] == 2)[:10]]
    decisions = {f"f{i}": (0 if i in wrong else CORRECT) for i in decided}
    cfg = RerankConfig(weight=0, class_strength=0, transition_strength=0, head_min_decided=10, head_anchor_share=0.4)
    return df, emb, wrong, decisions, cfg


def test_head_refit_on_the_embeddings_finds_the_errors_the_scores_missed():
    df, emb, wrong, decisions, cfg = head_case()
    with_head = rerank_scores(df, decisions, cfg, emb)
    without = rerank_scores(df, decisions, cfg)
    open_ = ~with_head["decided"]
    open_wrong = open_ & df.index.isin(wrong)
    assert open_wrong.sum() == len(wrong) - 5
    assert np.allclose(without["mislabel_score_rerank"], df["mislabel_score"], atol=1e-6)  # nothing else moves them
    top = with_head[open_].sort_values("mislabel_score_rerank", ascending=False).index[: open_wrong.sum()]
    assert set(top) == set(df.index[open_wrong])  # the hidden errors head the queue
    assert (with_head.loc[open_wrong, "relabel_rerank"] == 0).all()  # and are suggested their true class
    decided_rows = with_head["decided"]
    assert np.array_equal(with_head.loc[decided_rows, "mislabel_score_rerank"], df.loc[decided_rows, "mislabel_score"])


def test_head_refit_waits_for_enough_decisions():
    df, emb, wrong = clustered()
    decisions = {f"f{i}": 0 for i in wrong[:5]}
    cfg = RerankConfig(head_min_decided=10)
    a = rerank_scores(df, decisions, cfg, emb)
    b = rerank_scores(df, decisions, cfg)
    assert np.array_equal(a["mislabel_score_rerank"], b["mislabel_score_rerank"])
    with pytest.raises(ValueError, match="embeddings for"):
        rerank_scores(df, decisions, cfg, emb[:-1])


def test_noise_posterior_suspects_a_face_whose_other_class_is_often_mislabelled_as_its_label():
    """Class 0 faces are often given label 1, class 2 faces never: of two faces given 1 with the same
    p[1] = 0.4, the one whose other mass is on class 0 is the suspect one."""
    onehot = np.eye(3)
    true = np.r_[np.zeros(150, int), np.ones(100, int), np.full(100, 2)]
    given = np.r_[np.zeros(100, int), np.ones(150, int), np.full(100, 2)]  # 50 class-0 faces given 1
    p = np.vstack([onehot[true], [[0.6, 0.4, 0.0], [0.0, 0.4, 0.6]]])
    given = np.r_[given, 1, 1]
    post = noise_posterior(p, given, np.full(len(given), -1))
    assert np.allclose(post.sum(axis=1), 1)
    a, b = post[-2, 1], post[-1, 1]
    assert 0.6 < a < 0.7 and b > 0.98  # A: 0.4 / (0.4 + 0.6 / 3); B: class 2 is almost never given 1
    assert np.allclose(post[:-2], p[:-2])  # faces the head is sure of keep their class
    # a trusted label counts as certain: the curator saying the 50 class-0 faces given 1 are class 2
    # makes class 2 the one that gets given 1, and turns the suspicion around
    trusted = np.full(len(given), -1)
    trusted[100:150] = 2
    post = noise_posterior(p, given, trusted)
    assert post[-1, 1] < post[-2, 1]


def test_the_noise_model_changes_only_the_head_refit():
    df, emb, _, decisions, cfg = head_case()
    with_model = rerank_scores(df, decisions, cfg, emb)
    plain = rerank_scores(df, decisions, replace(cfg, head_noise_model=False), emb)
    assert not np.allclose(with_model["mislabel_score_rerank"], plain["mislabel_score_rerank"])
    no_head = replace(cfg, head_strength=0.0, head_mix=0.0)
    assert np.array_equal(
        rerank_scores(df, decisions, no_head, emb)["mislabel_score_rerank"],
        rerank_scores(df, decisions, replace(no_head, head_noise_model=False), emb)["mislabel_score_rerank"],
    )


def test_curate_rerank_defaults_are_the_rerank_config_defaults():
    from curate.cli.rerank_cmd import rerank

    defaults = {p.name: p.default for p in rerank.params if p.name.endswith(("weight", "strength"))}
    cfg = RerankConfig()
    assert defaults == {name: getattr(cfg, name) for name in defaults} and len(defaults) == 4
