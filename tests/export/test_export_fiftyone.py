"""FiftyOne source: a curated dataset (decisions, clean_label, excluded tag) becomes the same decisions
table, so every policy gives SCENARIO's expected result; the audit keeps the curator log."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd
import pytest
from export_helpers import CLASSES, CURATION_LOG, CURATION_STATE, EXPECTED, SCENARIO, results

from curate.export import ExportError, apply_policy, export_cleaned, load_source

pytestmark = pytest.mark.mongo


@pytest.fixture
def curated(scenario, tmp_path):
    """SCENARIO in FiftyOne as the curate loader and the App leave it (when as datetimes)."""
    import fiftyone as fo

    ds = fo.Dataset(f"curate-export-{uuid.uuid4().hex[:8]}")
    ds.default_classes = CLASSES
    ds.info["scores"] = str(scenario)
    samples = []
    for sid, given, verdict, dist in SCENARIO:
        sample = fo.Sample(filepath=str(tmp_path / "img" / f"{sid}.png"), tags=["train"], sample_key=sid,
                           ground_truth=fo.Classification(label=given), label_distribution=dist,
                           suggested_label=CLASSES[int(np.argmax(dist))], verdict=verdict,
                           mislabel_score=1 - dist[CLASSES.index(given)], ambiguity_score=0.3)  # fmt: skip
        if sid in CURATION_LOG:
            sample["decisions"] = [{**d, "when": dt.datetime.fromisoformat(d["when"])} for d in CURATION_LOG[sid]]
        label, excluded = CURATION_STATE.get(sid, (None, False))
        if label:
            sample["clean_label"] = fo.Classification(label=label)
        if excluded:
            sample.tags.append("excluded")
        samples.append(sample)
    ds.add_samples(samples)
    yield ds
    ds.delete()


def test_fiftyone_decisions_drive_every_policy(curated, tmp_path):
    table = load_source(f"fiftyone:{curated.name}")
    for policy in ("decisions", "auto", "soft"):
        assert results(apply_policy(table, policy)) == EXPECTED[policy], policy
    out = tmp_path / "clean.csv"
    summary = export_cleaned(curated.name, format="csv", policy="auto", out=out, by="dana")
    back = pd.read_csv(out, keep_default_na=False)
    kept = {sid: r for sid, r in EXPECTED["auto"].items() if r[1] not in ("drop", "exclude")}
    assert back["sample_id"].tolist() == sorted(kept)
    assert list(zip(back["clean_label"], back["action"], back["decided_by"])) == [kept[s] for s in sorted(kept)]
    assert summary.decided_by == {"auto": 5, "curator": 4}
    audit = json.loads((tmp_path / "clean.csv.audit.json").read_text())
    assert audit["source"]["kind"] == "fiftyone" and audit["source"]["scores"]["path"] == str(curated.info["scores"])
    assert [(d["sample_id"], d["action"], d["by"], d["when"]) for d in audit["decisions"]] == [
        (sid, d["action"], d["by"], d["when"]) for sid in CURATION_LOG for d in CURATION_LOG[sid]
    ]


def test_fiftyone_dataset_without_scores_is_refused(curated):
    curated.delete_sample_field("verdict")
    with pytest.raises(ExportError, match=r"field\(s\) verdict missing"):
        load_source(curated.name)


def test_an_excluded_tag_and_field_that_disagree_are_noted(curated, tmp_path):
    """The plugin keeps an ``excluded`` field beside the tag; when a curator tags or untags by hand
    the export follows the tag and says how many faces disagree."""
    import fiftyone as fo

    curated.add_sample_field("excluded", fo.BooleanField)
    tagged = curated.match_tags("excluded").values("sample_key")
    curated.set_values("excluded", [key in tagged for key in curated.values("sample_key")])
    summary = export_cleaned(curated.name, format="csv", policy="auto", out=tmp_path / "a.csv")
    assert not any("tag was followed" in note for note in summary.notes)

    untag = curated.match_tags("excluded").limit(1)
    gone = untag.values("sample_key")
    untag.untag_samples("excluded")
    summary = export_cleaned(curated.name, format="csv", policy="auto", out=tmp_path / "b.csv")
    assert any(note.startswith("1 face(s) have the 'excluded' tag") for note in summary.notes)
    actions = dict(zip(*pd.read_csv(tmp_path / "b.csv", keep_default_na=False)[["sample_id", "action"]].T.values))
    assert gone[0] in actions and actions[gone[0]] != "exclude"
