"""Sharded scoring (``curate score --shards N``, torchrun): equal to one process, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from curate import records
from curate.cli import main
from curate.data.load import load_table
from curate.data.synthetic import generate
from curate.jobs import score_job
from curate.scoring import shards
from dmue_core.distributed import DistContext

FAST = ["--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--no-load"]
READER = ["--path-column", "path", "--label-column", "label"]
TOLERANCE = 1e-5
SCALARS = ("uncertainty", "mislabel_score", "ambiguity_score", "knn_disagreement", "outlier_score")


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A tiny trained run (cross-fitted: 120 faces) and its one-process scores of all 120 faces."""
    root = tmp_path_factory.mktemp("sharded")
    generate(120, root / "data", seed=4, noise_rate=0.3)
    res = invoke("run", root / "data" / "labels.csv", *READER, "--out", root / "run", *FAST)
    assert res.exit_code == 0, res.output
    res = invoke("score", root / "run", root / "data" / "labels.csv", *READER, "--out", root / "one.parquet")
    assert res.exit_code == 0, res.output
    return root


def assert_same_scores(a_path, b_path) -> None:
    a, b = records.read_scores(a_path), records.read_scores(b_path)
    assert a.attrs["cross_fit"] > 0  # the fold models' out-of-fold pass was sharded too
    assert list(a["sample_id"]) == list(b["sample_id"])
    for col in records.VECTOR_COLUMNS:
        np.testing.assert_allclose(records.vectors(a, col), records.vectors(b, col), atol=TOLERANCE, err_msg=col)
    for col in SCALARS:
        np.testing.assert_allclose(a[col], b[col], atol=TOLERANCE, err_msg=col)
    for col in ("given_label", "suggested_label", "verdict", "reasons", "duplicate_group"):
        assert list(a[col]) == list(b[col]), col
    for col in ("neighbors", "near_duplicates", "issues"):
        assert [list(v) for v in a[col]] == [list(v) for v in b[col]], col
    emb_a, emb_b = records.load_embeddings(a_path), records.load_embeddings(b_path)
    np.testing.assert_allclose(emb_a.astype(np.float32), emb_b.astype(np.float32), atol=1e-3)  # float16 files


def test_shard_rows_split_the_label_order_into_disjoint_runs():
    given = np.array([2, 0, 1, 0, 2, 1, 0, 1, 2, 2, 0])
    parts = [shards.shard_rows(given, r, 3) for r in range(3)]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(given)))
    assert [len(p) for p in parts] == [3, 4, 4]
    assert max(given[parts[0]]) <= min(given[parts[1]]) and max(given[parts[1]]) <= min(given[parts[2]])
    with pytest.raises(ValueError, match="outside"):
        shards.shard_rows(given, 3, 3)


def test_two_gloo_processes_score_as_one(scored):
    out = scored / "two.parquet"
    res = invoke("score", scored / "run", scored / "data" / "labels.csv", *READER, "--out", out, "--shards", 2)
    assert res.exit_code == 0, res.output
    assert "scored 120 faces" in res.output
    assert_same_scores(scored / "one.parquet", out)
    assert not shards.parts_dir(out).exists()


def test_a_part_left_by_an_interrupted_run_is_reused(scored, monkeypatch):
    """Both ranks in this process, one after the other (the gather before the merge stubbed): rank 1
    writes its part and "crashes"; the re-run keeps that part as it is and rank 0 merges it."""
    reports: dict[int, bool] = {}  # each rank's last "reused" report, as the gather would collect them

    def gather(reused: bool, ctx: DistContext) -> list[bool]:
        reports[ctx.rank] = reused
        return [reports.get(r, False) for r in range(ctx.world_size)]

    monkeypatch.setattr(shards, "gather_objects", gather)
    out = scored / "resumed.parquet"
    table = load_table(str(scored / "data" / "labels.csv"), path_column="path", label_column="label")

    def rank(r: int):
        group = DistContext(rank=r, world_size=2, local_rank=r, device=torch.device("cpu"), owns_group=False)
        return score_job(scored / "run", table, out, group=group, progress=False)

    assert rank(1) is None and not out.exists()
    part = shards.part_path(out, 1, 2)
    written = part.stat().st_mtime_ns
    shards.part_path(out, 0, 2).write_bytes(b"not a part")  # unreadable: recomputed
    assert rank(1) is None
    assert part.stat().st_mtime_ns == written  # reused, not rewritten
    result = rank(0)
    assert result is not None and result.reused_parts == 1
    assert "reused 1 shard part" in result.summary()
    assert_same_scores(scored / "one.parquet", out)
    assert not shards.parts_dir(out).exists()
