"""Exact duplicates by decoded pixels: digests, groups, conflicts, leakage; inspect's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import main
from curate.data.duplicates import find_duplicates, pixel_fact, pixel_facts, table_duplicates
from curate.data.inspect import format_report, inspect_table
from curate.data.table import make_table


def _noise(seed: int, size: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def test_digest_is_of_decoded_pixels_not_file_bytes(tmp_path):
    px = _noise(1)
    Image.fromarray(px, "L").save(tmp_path / "a.png", compress_level=0)
    Image.fromarray(px, "L").save(tmp_path / "b.png", compress_level=9)
    Image.fromarray(px, "L").convert("RGB").save(tmp_path / "c.png")  # grey content stored as RGB
    Image.fromarray(px, "L").save(tmp_path / "d.bmp")
    changed = px.copy()
    changed[3, 4] ^= 1
    Image.fromarray(changed, "L").save(tmp_path / "e.png")
    Image.fromarray(px.T.copy(), "L").save(tmp_path / "f.png")  # same bytes multiset, other layout
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    facts = pixel_facts([tmp_path / n for n in ("a.png", "b.png", "c.png", "d.bmp", "e.png", "f.png")], workers=2)
    digests = [f.digest for f in facts]
    assert len(set(digests[:4])) == 1
    assert digests[4] != digests[0] and digests[5] != digests[0]
    colour = np.stack([px, px, 255 - px], axis=-1)
    Image.fromarray(colour, "RGB").save(tmp_path / "g.png")
    assert pixel_fact(tmp_path / "g.png").digest not in digests


@pytest.mark.parametrize("threads_faster", [True, False])
def test_pixel_facts_keeps_the_order_whichever_way_it_decodes(tmp_path, monkeypatch, threads_faster):
    import curate.data.duplicates as dup

    paths = []
    for i in range(11):
        Image.fromarray(_noise(10 + i), "L").save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    monkeypatch.setattr(dup, "PROBE", 2)  # 11 paths >= 4 * PROBE: two probes, then the rest one way
    # the probes' clock: serial 0 -> 5 s, threaded 5 -> 6 s (or 5 -> 15 s), then the rest
    ticks = iter([0.0, 5.0, 5.0, 6.0 if threads_faster else 15.0, 20.0, 21.0])
    monkeypatch.setattr(dup.time, "perf_counter", lambda: next(ticks))
    chosen = []
    pool_map = dup.ThreadPoolExecutor.map
    monkeypatch.setattr(dup.ThreadPoolExecutor, "map", lambda self, fn, chunk, **kw: chosen.append(len(chunk)) or
                        pool_map(self, fn, chunk, **kw))  # fmt: skip
    facts = pixel_facts(paths, workers=2, progress=False)
    assert [f.digest for f in facts] == [pixel_fact(p).digest for p in paths]
    assert chosen == ([2, 7] if threads_faster else [2])  # the rest (7 images) went to the faster way


def test_pixel_statistics_and_undecodable(tmp_path):
    Image.new("L", (10, 10), 77).save(tmp_path / "flat.png")
    Image.fromarray(_noise(2), "L").save(tmp_path / "noise.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    flat, noise, bad = pixel_facts([tmp_path / "flat.png", tmp_path / "noise.png", tmp_path / "bad.png"], workers=1)
    assert flat.std == 0 and flat.mode_share == 1.0
    assert noise.std > 40 and noise.mode_share < 0.1
    assert bad.digest is None and "cannot be decoded" in bad.problem
    assert pixel_fact(tmp_path / "missing.png").problem == "image file not found"


def _write_dataset(root: Path, spec: list[tuple[str, int, str, str]]):
    """spec rows: (sample name, pixel seed, class, split) -> LabelTable of the written images."""
    paths = []
    for name, seed, _, _ in spec:
        path = root / f"{name}.png"
        Image.fromarray(_noise(seed), "L").save(path, compress_level=seed % 10)
        paths.append(str(path))
    classes = ["angry", "happy", "sad"]
    table = make_table(
        [s[0] for s in spec], paths, [classes.index(s[2]) for s in spec], classes, split=[s[3] for s in spec]
    )
    return table


SPEC = [  # (name, pixel seed, label, split)
    ("a1", 10, "happy", "train"),
    ("a2", 10, "happy", "train"),  # same-split, same-label pair
    ("b1", 20, "happy", "train"),
    ("b2", 20, "sad", "train"),  # conflicting labels
    ("c1", 30, "angry", "train"),
    ("c2", 30, "angry", "test"),
    ("c3", 30, "angry", "val"),  # spans three splits
    ("d1", 40, "sad", "train"),
    ("d2", 40, "angry", "test"),  # conflicting and leaking
    ("e1", 50, "sad", "train"),  # unique
    ("e2", 51, "sad", "test"),  # unique
]


def test_groups_conflicts_and_leakage(tmp_path):
    table = _write_dataset(tmp_path, SPEC)
    report = table_duplicates(table, workers=2)
    seeds = np.array([s[1] for s in SPEC])
    # expected groups from the spec, independently of the code: rows sharing a seed
    shared = {s for s in seeds if (seeds == s).sum() > 1}
    assert report.n_groups == len(shared)
    assert ((report.group >= 0) == np.isin(seeds, list(shared))).all()
    for s in shared:
        assert len(set(report.group[seeds == s])) == 1
    by_first = {row.sample_ids[0]: row for row in report.groups.itertuples()}
    assert by_first["b1"].conflicting and by_first["d1"].conflicting
    assert not by_first["a1"].conflicting and not by_first["c1"].conflicting
    assert by_first["c1"].splits == ["train", "test", "val"] and by_first["d1"].cross_split
    assert not by_first["a1"].cross_split
    assert report.conflicting == 2 and report.cross_split == 2
    assert report.leakage == {
        "train | test": {"groups": 2, "train": 2, "test": 2},
        "train | val": {"groups": 1, "train": 1, "val": 1},
        "test | val": {"groups": 1, "test": 1, "val": 1},
    }
    assert report.size_histogram() == {2: 3, 3: 1}
    text = "\n".join(report.summary_lines())
    assert "4 groups covering 9 faces" in text and "conflicting labels: 2 groups" in text


def test_unlabeled_and_undecodable_rows_are_not_grouped():
    report = find_duplicates(
        ["x", "x", None, None, "y", "y"], [0, -1, 1, 1, 1, 1], ["s"] * 6, list("abcdef"), ["p", "q"]
    )
    assert report.group.tolist() == [0, 0, -1, -1, 1, 1]
    assert report.undecoded == 2
    assert not report.groups["conflicting"].any()  # an unlabeled copy does not conflict
    assert report.groups["labels"].tolist() == [["p"], ["q"]]


def test_inspect_reports_duplicates_and_balance(tmp_path):
    table = _write_dataset(tmp_path, SPEC)
    result = inspect_table(table, check_images=True, workers=2)
    kinds = [p.kind for p in result.warnings]
    assert kinds.count("identical images with conflicting labels") == 2
    assert kinds.count("identical images in more than one split") == 2
    text = format_report(result)
    assert "exact duplicates (decoded pixels): 4 groups covering 9 faces" in text
    assert "leakage train <-> test: 2 groups" in text
    assert "class balance: angry 4" in text
    assert inspect_table(table, check_images=False).duplicates is None
    assert inspect_table(table, check_duplicates=True).duplicates.n_groups == 4


def test_inspect_cli_no_duplicates_flag(tmp_path):
    root = tmp_path / "ds"
    for name, seed, label, split in SPEC:
        path = root / split / label / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(seed), "L").save(path)
    result = CliRunner().invoke(main, ["inspect", str(root)])
    assert result.exit_code == 0, result.output
    assert "spanning more than one split: 2 groups" in result.stdout
    result = CliRunner().invoke(main, ["inspect", str(root), "--no-duplicates"])
    assert "exact duplicates" not in result.stdout and "identical images" not in result.stdout


@pytest.mark.realdata
def test_ferplus_mini_duplicates_match_the_truth_column(shared_data):
    import pandas as pd

    from curate.data import read_dataset

    labels = shared_data / "ferplus-mini" / "labels.csv"
    table = read_dataset(str(labels), format="ferplus")
    report = table_duplicates(table, workers=2, progress=False)
    truth = pd.read_csv(labels)["dup_group"].to_numpy()
    # dup_group ids refer to the full set: within the mini set a group is a truth id shared by 2+ rows
    ids, counts = np.unique(truth[truth >= 0], return_counts=True)
    shared = set(ids[counts > 1])
    assert report.n_groups == len(shared)
    for g in shared:
        assert len(set(report.group[truth == g])) == 1 and report.group[truth == g][0] >= 0
    assert ((report.group >= 0) == np.isin(truth, list(shared))).all()
