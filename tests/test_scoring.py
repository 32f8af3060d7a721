"""Scoring: formulas, the per-sample record schema, batch-free scores, model/data mismatches."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from curate import neighbors, records
from curate.data.synthetic import generate
from curate.scoring.infer import iterate_outputs, resolve_mining_precision
from curate.scoring.pipeline import _neighbours, score_table
from curate.scoring.scores import (
    ScoreConfig,
    apply_class_prior,
    compute_scores,
    knn_disagreement,
    knn_histogram,
    suggest,
)
from dmue_core.config import DMUEConfig
from dmue_core.model import DMUE
from dmue_core.precision import native_bf16


def test_knn_histogram_and_scores_by_hand():
    given = np.array([0, 1, 2, 2])
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8], [0.2, 0.4, 0.4]])
    latent = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    sigma = np.array([1.0, 0.5, 0.9, 0.2])
    knn = np.array([[1, 2], [0, -1], [3, 0], [2, 1]])  # labels [1, 2], [0], [2, 0], [2, 1]
    np.testing.assert_allclose(
        knn_histogram(np.array([[0, 0, 1, 2], [2, 2, 2, 1]]), 3), [[0.5, 0.25, 0.25], [0.0, 0.25, 0.75]]
    )
    s = compute_scores(given, probs, latent, sigma, knn, ScoreConfig(w_model=1, w_knn=1, w_latent=1, class_prior=0))
    d = s["label_distribution"].astype(np.float64)
    # face 0: sigma = 1 -> latent ignored; (probs + [0, .5, .5]) / 2
    np.testing.assert_allclose(d[0], [0.3, 0.4, 0.3], rtol=1e-6)
    # face 1: probs + [1, 0, 0] + 0.5 * latent, total 2.5
    np.testing.assert_allclose(d[1], [1.45 / 2.5, 0.2 / 2.5, 0.85 / 2.5], rtol=1e-6)
    np.testing.assert_allclose(s["mislabel_score"], 1 - d[np.arange(4), given], rtol=1e-6)
    assert s["mislabel_score"][0] == pytest.approx(0.7)
    assert suggest(given, d, np.zeros(4, bool)).tolist() == [1, 0, 2, 0]  # out of the queues: the argmax
    np.testing.assert_allclose(s["knn_disagreement"], [1.0, 1.0, 0.5, 0.5])
    # ambiguity: own = entropy(probs) / log 3 (no consensus: the model view is probs), pooled half
    # with the neighbours' mean (face 1 has one neighbour), plus the class term: the mean of the
    # mislabel score's class means by given class and by believed class (argmax d = [1, 0, 2, 0])
    own = -(probs * np.log(probs)).sum(axis=1) / np.log(3)
    local = 0.5 * own + 0.5 * np.array([(own[1] + own[2]) / 2, own[0], (own[3] + own[0]) / 2, (own[2] + own[1]) / 2])
    ms = 1 - d[np.arange(4), given]
    by_given = np.array([ms[0], ms[1], (ms[2] + ms[3]) / 2, (ms[2] + ms[3]) / 2])
    assert d.argmax(axis=1).tolist() == [1, 0, 2, 0]
    by_belief = np.array([ms[0], (ms[1] + ms[3]) / 2, ms[2], (ms[1] + ms[3]) / 2])
    np.testing.assert_allclose(s["ambiguity_score"], (local + (by_given + by_belief) / 2) / 2, rtol=1e-5, atol=1e-7)
    alone = compute_scores(
        given, probs, latent, sigma, knn, ScoreConfig(ambiguity_neighbours=0, ambiguity_class=0, class_prior=0)
    )
    np.testing.assert_allclose(alone["ambiguity_score"], own, rtol=1e-5, atol=1e-7)
    # the auxiliary consensus is a fourth view, weighted w_aux; face 1: 2.5 above + 2 * [0, .5, .5]
    agree = np.array([[0.0, 1.0, 0.0]] * 4)
    agree[1] = [0.0, 0.5, 0.5]
    with_aux = compute_scores(given, probs, latent, sigma, knn, ScoreConfig(w_knn=1, w_aux=2, class_prior=0), agree)
    np.testing.assert_allclose(with_aux["label_distribution"][1], [1.45 / 4.5, 1.2 / 4.5, 1.85 / 4.5], rtol=1e-6)
    assert suggest(given, with_aux["label_distribution"], np.zeros(4, bool))[1] == 2


def test_a_face_in_a_queue_is_suggested_the_best_class_other_than_its_label():
    given = np.array([0, 0, 1])
    dist = np.array([[0.5, 0.3, 0.2], [0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    assert suggest(given, dist, np.array([False, False, False])).tolist() == [0, 0, 1]
    assert suggest(given, dist, np.array([True, True, False])).tolist() == [1, 2, 1]
    assert suggest(given, dist, np.ones(3, bool)).tolist() == [1, 2, 2]


def test_class_prior_is_a_bayes_update_of_the_given_label():
    """A class with twice the overall noise rate: the odds of each of its faces' given labels are
    multiplied by ((1 - r_y) / r_y) / ((1 - r) / r) ** strength, the other entries keep their
    proportions and every row still sums to 1; a class at the overall rate is left alone."""
    dist = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    given = np.array([0, 1, 2])
    noise, overall = np.array([0.4, 0.2, 0.2]), 0.2
    out = apply_class_prior(dist, given, noise, overall, 1.0)
    odds = 0.6 / 0.4 * (0.6 / 0.4) / (0.8 / 0.2)
    assert out[0, 0] == pytest.approx(odds / (1 + odds))
    assert out[0, 1] / out[0, 2] == pytest.approx(3.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out[1:], dist[1:])
    half = apply_class_prior(dist, given, noise, overall, 0.5)
    assert out[0, 0] < half[0, 0] < dist[0, 0]
    assert apply_class_prior(dist, given, noise, overall, 0.0) is dist


def test_scores_take_the_class_prior_from_the_target_probabilities():
    """Class 0's faces are confidently class 1 twice as often as the others' are claimed: with the
    prior on, its given labels lose belief and its clean-looking faces score higher than the same
    faces of a cleaner class."""
    rng = np.random.default_rng(0)
    given = np.repeat([0, 1, 2], 60)
    probs = np.tile([0.1, 0.1, 0.1], (180, 1))
    probs[np.arange(180), given] = 0.8
    probs[:24] = [0.05, 0.9, 0.05]  # 24 of 60 faces given 0 look like 1
    probs[60:66] = [0.9, 0.05, 0.05]  # 6 of 60 faces given 1 look like 0
    probs[120:126] = [0.9, 0.05, 0.05]
    probs = probs + rng.uniform(0, 1e-3, probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    latent = np.full((180, 3), 0.5)
    latent[np.arange(180), given] = 0
    knn = np.full((180, 1), -1)
    off = compute_scores(given, probs, latent, np.ones(180), knn, ScoreConfig(w_knn=0, class_prior=0))
    on = compute_scores(given, probs, latent, np.ones(180), knn, ScoreConfig(w_knn=0, class_prior=1))
    assert on["mislabel_score"][30] > off["mislabel_score"][30] + 0.05  # a clean-looking face given 0
    assert on["mislabel_score"][90] < off["mislabel_score"][90]  # a clean-looking face given 1
    np.testing.assert_allclose(on["label_distribution"].sum(axis=1), 1.0, rtol=1e-5)


def test_ambiguity_pools_neighbours_and_class():
    """A face whose neighbours are ambiguous, or whose class is contested, scores higher than the
    same face among clear neighbours in an uncontested class."""
    given = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05]] * 3 + [[0.05, 0.9, 0.05], [0.4, 0.3, 0.3], [0.3, 0.4, 0.3]])
    latent = np.array([[0, 0.5, 0.5]] * 3 + [[0.5, 0, 0.5]] * 3)
    sigma = np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.3])
    knn = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    cfg = ScoreConfig(w_knn=0)
    s = compute_scores(given, probs, latent, sigma, knn, cfg)["ambiguity_score"]
    alone = compute_scores(given, probs, latent, sigma, knn, replace(cfg, ambiguity_neighbours=0, ambiguity_class=0))
    assert alone["ambiguity_score"][3] == pytest.approx(alone["ambiguity_score"][0], abs=0.05)  # same face alone
    assert s[3] > s[0] + 0.15  # ... but among ambiguous neighbours, in a contested class
    with pytest.raises(ValueError, match="ambiguity_neighbours"):
        ScoreConfig(ambiguity_neighbours=1.5)


def test_a_clear_face_with_a_wrong_label_is_less_ambiguous_than_a_face_between_two_classes():
    """Ambiguity belongs to the face: a clear class-1 face given class 0 (low sigma, the latent
    view towards 1) scores below a face the model puts between classes 0 and 1. The score before
    2026-12-05, whose face term read the label (entropy of the label-mixed distribution, 1 - sigma),
    ranked them the other way round (0.533 against 0.520)."""
    given = np.array([0] * 10 + [1] * 10 + [0] * 8)
    probs = np.array(
        [[0.9, 0.05, 0.05]] * 10 + [[0.05, 0.9, 0.05]] * 10 + [[0.15, 0.8, 0.05]] * 4 + [[0.5, 0.45, 0.05]] * 4
    )
    latent = np.array([[0, 0.9, 0.1]] * 10 + [[0.9, 0, 0.1]] * 10 + [[0, 0.95, 0.05]] * 4 + [[0, 0.9, 0.1]] * 4)
    sigma = np.array([0.9] * 20 + [0.2] * 4 + [0.6] * 4)
    s = compute_scores(given, probs, latent, sigma, -np.ones((28, 2), dtype=np.int64), ScoreConfig())
    flipped, between = s["ambiguity_score"][20:24], s["ambiguity_score"][24:]
    assert s["label_distribution"][20:].argmax(axis=1).tolist() == [1] * 8  # both kinds are overturned
    assert between.min() > flipped.max() + 0.05


def test_empty_neighbour_slots_are_ignored():
    """An approximate index may leave slots at -1: they must not count as a class or a vote."""
    knn = np.array([[1, -1, -1, -1], [-1, -1, -1, -1]])
    np.testing.assert_allclose(knn_histogram(np.array([[0, 1, -1, -1], [-1] * 4]), 3), [[0.5, 0.5, 0.0], [0.0] * 3])
    s = compute_scores(
        np.array([0, 2]), np.full((2, 3), 1 / 3), np.full((2, 3), 0.5) * [[0, 1, 1], [1, 1, 0]], np.ones(2), knn
    )
    np.testing.assert_allclose(s["knn_disagreement"], [1.0, 0.0])
    np.testing.assert_allclose(s["label_distribution"].sum(axis=1), 1.0, rtol=1e-6)
    assert np.all((0 <= s["ambiguity_score"]) & (s["ambiguity_score"] <= 1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    table = generate(70, root / "data", seed=1, noise_rate=0.3)
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=7, backbone="fer_cnn", small_input=True)).eval()
    with torch.no_grad():  # heads far from their near-zero init, so outputs differ between faces
        for head in [*model.aux_heads, model.target_head]:
            head.weight.normal_(std=0.3)
    return root, table, model


def test_records_schema_and_ranges(tiny):
    root, table, model = tiny
    out = root / "scores.parquet"
    score_table(model, table, out, image_size=32, progress=False, score_cfg=ScoreConfig(k=5))
    df = records.read_scores(out)
    assert list(df.columns) == [*records.COLUMNS, *records.ISSUE_COLUMNS]
    assert df["outlier_score"].between(0, 1).all() and df["duplicate_group"].dtype == np.int64
    assert all(set(i) <= set(records.ISSUES) for i in df["issues"])
    assert "data_issues" in df.attrs and df.attrs["data_issues"]["duplicates"]["groups"] == 0
    assert df.attrs["classes"] == list(table.attrs["classes"])
    assert len(df) == len(table)
    for col in ("target_probs", "latent_distribution", "aux_consensus", "label_distribution"):
        np.testing.assert_allclose(records.vectors(df, col).sum(axis=1), 1.0, atol=1e-5)
    lat = records.vectors(df, "latent_distribution")
    rows, given = np.arange(len(df)), df["given_label"].to_numpy()
    assert np.all(lat[rows, given] == 0)
    assert df.attrs["consensus_source"] == "dmue_aux_branches"
    agree = records.vectors(df, "aux_consensus")
    assert (agree[rows, given] > 0).all() and not np.allclose(agree, records.vectors(df, "target_probs"), atol=1e-3)
    knn = pd.Index(df["sample_id"]).get_indexer(np.concatenate(df["neighbors"].to_numpy())).reshape(len(df), 5)
    again = compute_scores(
        given, records.vectors(df, "target_probs"), lat, df["uncertainty"].to_numpy(), knn, ScoreConfig(k=5), agree
    )  # the stored views rebuild the stored scores
    np.testing.assert_allclose(again["mislabel_score"], df["mislabel_score"], atol=1e-5)
    for col in ("mislabel_score", "ambiguity_score", "knn_disagreement", "uncertainty"):
        assert df[col].between(0, 1).all(), col
    assert set(df["verdict"]) <= set(records.VERDICTS)
    assert all(len(n) == 5 and sid not in n for n, sid in zip(df["neighbors"], df["sample_id"]))
    emb = records.load_embeddings(out)
    assert emb.shape[0] == len(df) and emb.dtype == np.float16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scores_do_not_depend_on_batch(tiny, precision):
    """Same faces, other batch sizes and other batch companions (shuffled rows) -> same scores."""
    root, table, model = tiny
    a, b = root / "a.parquet", root / "b.parquet"
    cfg = ScoreConfig(k=5, mining_precision=precision)
    score_table(model, table, a, image_size=32, batch_size=64, progress=False, score_cfg=cfg)
    shuffled = table.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled.attrs = table.attrs
    score_table(model, shuffled, b, image_size=32, batch_size=7, progress=False, score_cfg=cfg)
    da = records.read_scores(a).set_index("sample_id")
    db = records.read_scores(b).set_index("sample_id").loc[da.index]
    for col in ("uncertainty", "mislabel_score", "ambiguity_score", "knn_disagreement"):
        np.testing.assert_allclose(da[col], db[col], atol=1e-5, err_msg=col)
    np.testing.assert_allclose(
        records.vectors(da, "label_distribution"), records.vectors(db, "label_distribution"), atol=1e-5
    )


def _score_with(tiny, setting: str, *values: str) -> list:
    """The tiny table scored once per value of one ScoreConfig ``setting``; checks that each file
    records the value it was made with."""
    root, table, model = tiny
    frames = []
    for v in values:
        path = root / f"{setting}-{v}.parquet"
        score_table(model, table, path, image_size=32, progress=False, score_cfg=ScoreConfig(k=5, **{setting: v}))
        frames.append(records.read_scores(path))
        assert frames[-1].attrs[setting] == v
    return frames


def test_bf16_mining_changes_only_the_latent_and_only_slightly(tiny):
    """bf16 mining: the target outputs are bit-identical, the latent moves by < 1e-2, and the file
    records which precision made it."""
    a, b = _score_with(tiny, "mining_precision", "fp32", "bf16")
    np.testing.assert_array_equal(records.vectors(a, "target_probs"), records.vectors(b, "target_probs"))
    lat_a, lat_b = records.vectors(a, "latent_distribution"), records.vectors(b, "latent_distribution")
    assert lat_a.std(axis=0).max() > 0.01  # the latent is not trivially uniform
    assert 0 < np.abs(lat_a - lat_b).max() < 1e-2


def test_mining_precision_resolution():
    assert resolve_mining_precision("fp32", "cpu") == "fp32"
    assert resolve_mining_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    with pytest.raises(ValueError, match="mining precision"):
        resolve_mining_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="mining_precision"):
        ScoreConfig(mining_precision="half")


class _Views(torch.utils.data.Dataset):
    """Random faces as ``(x, y, idx)`` items; ``mirrored``: the same faces flipped left-right."""

    def __init__(self, mirrored: bool = False) -> None:
        g = torch.Generator().manual_seed(5)
        self.x = torch.rand(12, 3, 32, 32, generator=g)
        self.x = self.x.flip(3) if mirrored else self.x
        self.y = torch.randint(0, 7, (12,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], i


def _outputs(model, data, tta: str) -> list[np.ndarray]:
    chunks = list(iterate_outputs(model, data, batch_size=5, tta=tta, progress=False))
    return [np.concatenate([getattr(c, f) for c in chunks]) for f in ("emb", "logits", "latent")]


def test_hflip_tta_is_the_mean_of_both_views_and_mirror_invariant(tiny):
    """hflip = mean over the face and its mirror image: the outputs are the average of the two
    one-view passes, and a face and its mirror image get the same outputs."""
    model = tiny[2]
    plain, mirrored = _outputs(model, _Views(), "none"), _outputs(model, _Views(mirrored=True), "none")
    tta, tta_of_mirrored = _outputs(model, _Views(), "hflip"), _outputs(model, _Views(mirrored=True), "hflip")
    for a, b, both, both_mirrored in zip(plain, mirrored, tta, tta_of_mirrored):
        assert np.abs(a - b).max() > 1e-3  # the model is not already mirror-invariant
        np.testing.assert_allclose(both, (a + b) / 2, atol=1e-5)
        np.testing.assert_allclose(both, both_mirrored, atol=1e-5)
    with pytest.raises(ValueError, match="tta"):
        next(iterate_outputs(model, _Views(), tta="vflip", progress=False))
    with pytest.raises(ValueError, match="score.tta"):
        ScoreConfig(tta="vflip")


def test_tta_is_recorded_and_changes_scores(tiny):
    a, b = _score_with(tiny, "tta", "none", "hflip")
    assert np.abs(a["mislabel_score"] - b["mislabel_score"]).max() > 1e-4


def test_mismatches_fail_before_any_work(tiny):
    root, table, model = tiny
    out = root / "never.parquet"
    with pytest.raises(ValueError, match="trained on classes"):
        score_table(model, table, out, model_classes=list("abcdefg"), progress=False)
    with pytest.raises(ValueError, match="empty"):
        score_table(model, table.iloc[:0], out, progress=False)
    five = DMUE(DMUEConfig(num_classes=5, backbone="fer_cnn")).eval()
    with pytest.raises(ValueError, match="predicts 5 classes"):
        score_table(five, table, out, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        score_table(model, table, root / "missing" / "x.parquet", progress=False)
    unlabeled = table.copy()
    unlabeled.loc[[2, 5], "label"] = -1
    first = ", ".join(table["sample_id"][[2, 5]])
    with pytest.raises(ValueError, match=f"2 row\\(s\\) of .* have no label \\(first: {first}\\)"):
        score_table(model, unlabeled, out, progress=False)
    assert not out.exists()


def test_uncertainty_of_a_set_missing_a_class_is_the_models_own(tiny):
    """Batch-free sigma equals the model's eval-mode sigma on the same faces, also when a class
    has no face in the set (its mean must be undefined, not a zero vector)."""
    from curate.scoring.pipeline import _uncertainty, class_means

    _, table, model = tiny
    torch.manual_seed(1)
    emb = torch.randn(len(table), 256)
    given = table["label"].to_numpy()
    keep = given != 2
    with torch.no_grad():
        expected = model.uncertainty(emb[keep], torch.from_numpy(given[keep])).numpy()
    means = class_means(emb[keep].numpy(), given[keep], 7)
    got = _uncertainty(model, emb[keep].numpy(), given[keep], means)
    assert np.isnan(means[2]).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_failed_rescore_keeps_the_scores_and_embeddings_pair(tiny, tmp_path, monkeypatch):
    _, table, model = tiny
    out = tmp_path / "s.parquet"
    score_table(model, table, out, image_size=32, progress=False, score_cfg=ScoreConfig(k=5))
    before = out.read_bytes(), records.embeddings_path(out).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for target, name in ((records.np, "save"), (records.ScoresWriter, "write")):  # either file's write fails
        with monkeypatch.context() as patch:
            patch.setattr(target, name, disk_full)
            with pytest.raises(OSError, match="No space left"):
                score_table(model, table.iloc[:20], out, image_size=32, progress=False, score_cfg=ScoreConfig(k=5))
        assert (out.read_bytes(), records.embeddings_path(out).read_bytes()) == before, name
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.embeddings.npy", "s.parquet"]


def test_interrupted_write_leaves_no_file(tmp_path):
    import pandas as pd

    bad = pd.DataFrame({c: [] for c in records.COLUMNS[:-1]})
    with pytest.raises(ValueError, match="missing columns"):
        records.write_scores(tmp_path / "s.parquet", bad, 3, {"classes": ["a", "b", "c"]})
    assert list(tmp_path.iterdir()) == []


def test_faces_without_a_usable_embedding_get_no_neighbours():
    """All-zero (dead ReLU) or non-finite embeddings: no neighbours, nobody's neighbour, no crash."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    emb[[3, 17]] = 0.0
    emb[25, 2] = np.nan
    indices, _, unusable, _ = _neighbours(emb, 5)
    assert np.flatnonzero(unusable).tolist() == [3, 17, 25]
    assert (indices[unusable] == -1).all()
    assert (indices[~unusable] >= 0).all() and not np.isin(indices, [3, 17, 25]).any()
    exact = neighbors.knn(np.delete(emb, [3, 17, 25], axis=0), 5).indices
    keep = np.flatnonzero(~unusable)
    np.testing.assert_array_equal(indices[keep], keep[exact])


def test_knn_disagreement_hand_made() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    neighbors = np.array([[1, 2], [0, 3], [3, 4], [2, 0], [-1, 3]])
    expected = np.array([0.5, 0.5, 0.5, 0.5, 1.0])  # row 4: the -1 slot is ignored
    np.testing.assert_allclose(knn_disagreement(labels, neighbors), expected)
    np.testing.assert_array_equal(knn_disagreement(labels[:1], np.array([[-1, -1]])), [0.0])  # no neighbour: 0
    with pytest.raises(ValueError, match="same N"):
        knn_disagreement(labels[:4], neighbors)
