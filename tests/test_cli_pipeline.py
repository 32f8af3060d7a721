"""The train/score/run commands end to end: a synthetic run, bad inputs, and the real mini set."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from curate import records
from curate.cli import main
from curate.cli.demo_cmd import DEMO_CONFIDENCE
from curate.data.synthetic import generate
from curate.run_config import RunConfig, resolve_config

RESOLVE_ARGS = (
    "config_file",
    "backbone",
    "weights",
    "init_from",
    "epochs",
    "batch_size",
    "image_size",
    "small_input",
    "ramp_a",
    "aux_fraction",
    "balanced_sampler",
    "device",
    "amp",
    "num_workers",
    "seed",
    "deterministic",
)
FAST = ["--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--no-load"]


def invoke(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    generate(120, root / "data", seed=2, noise_rate=0.3)
    res = invoke(
        "run",
        root / "data" / "labels.csv",
        "--path-column",
        "path",
        "--label-column",
        "label",
        "--out",
        root / "run",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    return root


def test_run_writes_config_model_and_scores(synthetic_run):
    run = synthetic_run / "run"
    for name in (
        "config.yaml",
        "classes.json",
        "model.pt",
        "scores.parquet",
        "scores.embeddings.npy",
        "checkpoints/last.pt",
        "train_log.jsonl",
    ):
        assert (run / name).exists(), name
    df = records.read_scores(run / "scores.parquet")
    assert len(df) == 120 and list(df.columns) == [*records.COLUMNS, *records.ISSUE_COLUMNS]
    assert df.attrs["reader"]["label_column"] == "label"
    assert df.attrs["tta"] == "hflip"
    assert RunConfig.load(run / "config.yaml").train.balanced_sampler is False  # every face once per epoch
    from curate.files import umask

    for name in ("config.yaml", "classes.json", "faces.json", "model.pt", "scores.parquet", "scores.embeddings.npy"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask(), name  # not private like mkstemp's


def test_sampler_defaults_flags_and_faithful(tmp_path):
    """Uniform sampling by default, the paper's class-balanced sampler with --faithful or the flag."""

    def cfg(**flags: bool) -> RunConfig:
        return resolve_config({"dataset": "x"}, **{**dict.fromkeys(RESOLVE_ARGS), "faithful": False, **flags})

    assert cfg().train.balanced_sampler is False
    assert cfg(faithful=True).train.balanced_sampler is True
    assert cfg(balanced_sampler=True).train.balanced_sampler is True
    assert cfg(faithful=True, balanced_sampler=False).train.balanced_sampler is False


def test_amp_flag_maps_to_the_train_setting():
    def amp(value: str | None):
        args = {**dict.fromkeys(RESOLVE_ARGS), "faithful": False, "amp": value}
        return resolve_config({"dataset": "x"}, **args).train.amp

    assert (amp(None), amp("auto"), amp("on"), amp("off")) == ("auto", "auto", True, False)


def test_score_reproduces_run_and_config_reads_back(synthetic_run):
    out = synthetic_run / "again.parquet"
    score = ("score", synthetic_run / "run", synthetic_run / "data" / "labels.csv", "--path-column", "path",
             "--label-column", "label", "--out", out)  # fmt: skip
    res = invoke(*score)
    assert res.exit_code == 0, res.output
    a = records.read_scores(synthetic_run / "run" / "scores.parquet")
    b = records.read_scores(out)
    assert (a["sample_id"] == b["sample_id"]).all()
    for col in ("mislabel_score", "ambiguity_score", "uncertainty", "knn_disagreement"):
        np.testing.assert_allclose(a[col], b[col], atol=1e-5, err_msg=col)
    assert (a["verdict"] == b["verdict"]).all()
    res = invoke(*score)
    assert res.exit_code != 0 and "--force" in res.output
    res = invoke(
        *score,
        "--force",
        "--mining-precision",
        "fp32",
        "--tta",
        "none",
    )
    assert res.exit_code == 0, res.output
    attrs = records.read_scores(out).attrs
    assert (attrs["mining_precision"], attrs["tta"]) == ("fp32", "none")


def test_config_replays_its_reader_options(synthetic_run, tmp_path):
    """--config reads the table with the recorded columns and class order; flags still win."""
    from curate.data.errors import OptionError
    from curate.data.load import READER_KEYS
    from curate.data.table import classes_of
    from curate.job_inputs import table_and_config

    cfg = RunConfig.load(synthetic_run / "run" / "config.yaml")
    order = ["neutral", "angry", "disgust", "fear", "happy", "sad", "surprise"]
    cfg.data = {**cfg.data, "classes": ",".join(order), "skip_report": str(tmp_path / "old-report.csv")}
    cfg.save(tmp_path / "config.yaml")
    data = synthetic_run / "data" / "labels.csv"

    def read(**flags):
        reader = {**dict.fromkeys(READER_KEYS), "splits": (), **{k: v for k, v in flags.items() if k in READER_KEYS}}
        settings = {**dict.fromkeys(RESOLVE_ARGS), "faithful": False, "config_file": tmp_path / "config.yaml"}
        table, resolved = table_and_config(str(data), tmp_path / "run", reader, **settings)
        return classes_of(table), resolved.data, len(table)

    classes, recorded, _ = read()
    assert classes == order and recorded["classes"] == ",".join(order)
    assert not (tmp_path / "old-report.csv").exists()  # an output path is not replayed
    classes, recorded, _ = read(classes=",".join(order[::-1]))
    assert classes == order[::-1] and recorded["classes"] == ",".join(order[::-1])

    cfg.data["splits"] = ["no-such-split"]  # a recorded split this dataset lacks: --split '' clears it
    cfg.save(tmp_path / "config.yaml")
    with pytest.raises(OptionError, match="no-such-split not found"):
        read()
    assert read(splits=("",))[2] == 120


def test_score_takes_the_model_class_order(synthetic_run, tmp_path):
    """The same faces listed with their classes in another order score the same, in the model's order."""
    out = tmp_path / "reordered.parquet"
    res = invoke(
        "score",
        synthetic_run / "run",
        synthetic_run / "data" / "labels.csv",
        "--path-column",
        "path",
        "--label-column",
        "label",
        "--classes",
        "surprise,sad,neutral,happy,fear,disgust,angry",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    a, b = records.read_scores(synthetic_run / "run" / "scores.parquet"), records.read_scores(out)
    assert b.attrs["classes"] == a.attrs["classes"]
    assert (a["given_label"] == b["given_label"]).all() and (a["verdict"] == b["verdict"]).all()
    np.testing.assert_allclose(a["mislabel_score"], b["mislabel_score"], atol=1e-5)


def test_score_reads_classes_spelt_another_way_as_the_model_s(synthetic_run, tmp_path):
    """The same faces labelled happiness, sadness, anger (RAF-DB's spellings) score as the model's
    happy, sad, angry: the same scores, said in one line."""
    import pandas as pd

    frame = pd.read_csv(synthetic_run / "data" / "labels.csv")
    frame["path"] = [str(synthetic_run / "data" / p) for p in frame["path"]]
    frame["label"] = frame["label"].replace({"happy": "happiness", "sad": "sadness", "angry": "anger"})
    frame.to_csv(tmp_path / "spelt.csv", index=False)
    out = tmp_path / "spelt.parquet"
    res = invoke("score", synthetic_run / "run", tmp_path / "spelt.csv", "--out", out)
    assert res.exit_code == 0, res.output
    assert "classes anger, happiness, sadness are scored as the model's angry, happy, sad" in res.output
    n = len(frame)
    assert f"read spelt.csv as csv: {n:,} faces of 7 classes, the labels of its column label" in res.output
    a, b = records.read_scores(synthetic_run / "run" / "scores.parquet"), records.read_scores(out)
    assert b.attrs["classes"] == a.attrs["classes"]
    assert (a["given_label"] == b["given_label"]).all() and (a["verdict"] == b["verdict"]).all()
    np.testing.assert_allclose(a["mislabel_score"], b["mislabel_score"], atol=1e-5)


def _with_ids(synthetic_run, path, as_id=lambda row: True):
    """The synthetic labels.csv at ``path`` with absolute image paths and, where ``as_id(row)``, the
    label written as its class id in the run's order (as FER2013-style files give labels)."""
    import pandas as pd

    classes = json.loads((synthetic_run / "run" / "classes.json").read_text())
    frame = pd.read_csv(synthetic_run / "data" / "labels.csv")
    frame["path"] = [str(synthetic_run / "data" / p) for p in frame["path"]]
    ids = frame["label"].map(classes.index).astype(str)
    frame["label"] = [i if as_id(row) else name for row, (i, name) in enumerate(zip(ids, frame["label"]))]
    frame.to_csv(path, index=False)
    return path, classes


def test_score_reads_bare_class_ids_in_the_model_order(synthetic_run, tmp_path):
    """Integer labels with no names score as the model's classes in its recorded order, said in one line."""
    data, classes = _with_ids(synthetic_run, tmp_path / "ids.csv")
    out = tmp_path / "ids.parquet"
    res = invoke("score", synthetic_run / "run", data, "--out", out)
    assert res.exit_code == 0, res.output
    named = ", ".join(f"{i} {c}" for i, c in enumerate(classes))
    assert f"the labels are class ids without names: read as the classes of {synthetic_run / 'run'} ({named})" in (
        res.output
    )
    a, b = records.read_scores(synthetic_run / "run" / "scores.parquet"), records.read_scores(out)
    assert b.attrs["classes"] == classes
    assert (a["given_label"].to_numpy() == b["given_label"].to_numpy()).all()
    np.testing.assert_allclose(a["mislabel_score"], b["mislabel_score"], atol=1e-5)


def test_labels_the_model_cannot_read_name_the_classes_flag_to_pass(synthetic_run, tmp_path):
    """Labels mixing class names and ids cannot be mapped: the error gives the exact --classes value,
    and passing it scores the faces as the run did."""
    data, classes = _with_ids(synthetic_run, tmp_path / "mixed.csv", as_id=lambda row: row % 3 == 0)
    out = tmp_path / "mixed.parquet"
    res = invoke("score", synthetic_run / "run", data, "--out", out)
    assert res.exit_code != 0 and not out.exists()
    value = ",".join(classes)
    assert f"pass --classes {value}" in res.output
    res = invoke("score", synthetic_run / "run", data, "--classes", value, "--out", out)
    assert res.exit_code == 0, res.output
    a, b = records.read_scores(synthetic_run / "run" / "scores.parquet"), records.read_scores(out)
    assert (a["given_label"].to_numpy() == b["given_label"].to_numpy()).all()


def test_init_from_names_bare_class_ids(synthetic_run, tmp_path):
    """--init-from reads integer labels as the earlier model's classes (so its heads match by name)."""
    from curate.data.load import READER_KEYS
    from curate.data.table import classes_of
    from curate.job_inputs import table_and_config

    data, classes = _with_ids(synthetic_run, tmp_path / "ids.csv")
    reader = {**dict.fromkeys(READER_KEYS), "splits": ()}
    said = []
    for source in (synthetic_run / "run", synthetic_run / "run" / "model.pt"):
        settings = {**dict.fromkeys(RESOLVE_ARGS), "faithful": False, "init_from": source}
        table, _ = table_and_config(str(data), tmp_path / "run", reader, log=said.append, **settings)
        assert classes_of(table) == classes and (table["label_name"] == pd_labels(synthetic_run)).all()
    named = [line for line in said if "class ids without names" in line]
    assert len(named) == 2 and len(said) == 4  # and twice "read ids.csv as csv: ..."
    settings = {**dict.fromkeys(RESOLVE_ARGS), "faithful": False}
    table, _ = table_and_config(str(data), tmp_path / "run", reader, log=said.append, **settings)
    assert classes_of(table) == [str(i) for i in range(len(classes))]
    assert [line for line in said if "class ids without names" in line] == named
    assert said[-1].startswith("read ids.csv as csv:") and "the labels of its column" in said[-1]


def pd_labels(synthetic_run):
    import pandas as pd

    return pd.read_csv(synthetic_run / "data" / "labels.csv")["label"].to_numpy()


def test_bad_inputs_fail_before_work(synthetic_run, tmp_path):
    data = synthetic_run / "data" / "labels.csv"
    opts = ["--path-column", "path", "--label-column", "label"]
    # a class the model does not know
    res = invoke(
        "score",
        synthetic_run / "run",
        data,
        *opts,
        "--classes",
        "angry,disgust,fear,happy,sad,surprise,neutral,contempt",
        "--out",
        tmp_path / "x.parquet",
    )
    assert res.exit_code != 0 and "trained on classes" in res.output
    # truncated checkpoint
    bad_run = tmp_path / "bad"
    bad_run.mkdir()
    for name in ("config.yaml", "classes.json"):
        (bad_run / name).write_bytes((synthetic_run / "run" / name).read_bytes())
    (bad_run / "checkpoints").mkdir()
    blob = (synthetic_run / "run" / "checkpoints" / "last.pt").read_bytes()
    (bad_run / "checkpoints" / "last.pt").write_bytes(blob[: len(blob) // 3])
    res = invoke("score", bad_run, data, *opts, "--out", tmp_path / "y.parquet")
    assert res.exit_code != 0 and "truncated" in res.output
    # unwritable / missing output folder
    res = invoke("score", synthetic_run / "run", data, *opts, "--out", tmp_path / "nope" / "z.parquet")
    assert res.exit_code != 0 and "does not exist" in res.output
    res = invoke(
        "score",
        synthetic_run / "run",
        data,
        *opts,
        "--out",
        tmp_path / "z.parquet",
        "--csv",
        tmp_path / "nope" / "z.csv",
    )
    assert res.exit_code != 0 and f"output folder {tmp_path / 'nope'} does not exist" in res.output
    assert not list(tmp_path.glob("*.parquet"))


def test_two_classes_are_refused_before_any_work(tmp_path):
    """DMUE's auxiliary branches each leave one class out: `train` and `run` refuse a two-class set
    with one line naming the file and its classes, and write no run."""
    generate(20, tmp_path / "data", seed=0, classes=("happy", "sad"), splits={"train": 1.0})
    for command, flags in (("train", FAST[:-1]), ("run", FAST)):
        res = invoke(command, tmp_path / "data" / "labels.csv", *flags, "--out", tmp_path / command)
        assert res.exit_code != 0
        assert "labels.csv: 2 classes (happy, sad); DMUE needs at least 3" in res.output
        assert not (tmp_path / command / "checkpoints").exists() and not (tmp_path / command / "model.pt").exists()


def test_rerun_resumes_its_own_settings_and_refuses_another_run(synthetic_run, tmp_path):
    """An existing --out is resumed with its config.yaml; another image size, model or dataset is
    refused before anything is written."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run / "run", run)
    data = synthetic_run / "data" / "labels.csv"
    saved = (run / "config.yaml").read_bytes()
    res = invoke("train", data, "--out", run)  # no flags: the run's own settings (1 epoch, 32 px)
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and (run / "config.yaml").read_bytes() == saved
    assert "already trained on these 120 faces (1 epochs): reusing the model" in res.output

    for flags, why in (
        (["--image-size", "48"], "image size 32, not 48"),
        (["--backbone", "mobilenet_v2"], "another model config"),
    ):
        res = invoke("train", data, "--out", run, *flags)
        assert res.exit_code == 1 and why in res.output and "use another --out" in res.output, res.output
        assert (run / "config.yaml").read_bytes() == saved
    other = generate(60, tmp_path / "other", seed=5, noise_rate=0.3)
    assert len(other) == 60
    res = invoke("train", tmp_path / "other" / "labels.csv", "--out", run)
    assert res.exit_code == 1 and "another dataset or other labels (120 faces, now 60)" in res.output
    assert (run / "config.yaml").read_bytes() == saved


def test_early_failures_leave_no_run_directory(synthetic_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_run / "data", data)
    res = invoke("train", data / "labels.csv", "--out", tmp_path / "nb", "--backbone", "nosuch", *FAST[:-1])
    assert res.exit_code == 1 and "nosuch" in res.output and not (tmp_path / "nb").exists()

    broken = sorted((data / "images").iterdir())[7]
    broken.write_bytes(b"not an image at all" * 10)
    res = invoke("train", data / "labels.csv", "--out", tmp_path / "bad", *FAST[:-1])
    assert res.exit_code == 1 and "not a readable image" in res.output and broken.name in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)  # a message, not a traceback
    assert not (tmp_path / "bad").exists()
    report = tmp_path / "skipped.csv"
    res = invoke(
        "train",
        data / "labels.csv",
        "--out",
        tmp_path / "skip",
        "--on-bad",
        "skip",
        "--skip-report",
        report,
        *FAST[:-1],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "skip" / "faces.json").read_text())["faces"] == 119
    assert broken.name in report.read_text()


def test_records_hold_absolute_paths_and_score_keeps_files(synthetic_run, tmp_path, monkeypatch):
    shutil.copytree(synthetic_run / "data", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "keep.csv"
    keep.write_text("precious")
    res = invoke("score", synthetic_run / "run", "data/labels.csv", "--out", "s.parquet", "--csv", keep)
    assert res.exit_code == 1 and "keep.csv exists; pass --force" in res.output and keep.read_text() == "precious"
    res = invoke("score", synthetic_run / "run", "data/labels.csv", "--out", "s.parquet")
    assert res.exit_code == 0, res.output
    attrs = records.read_scores(tmp_path / "s.parquet").attrs
    assert attrs["dataset"] == str(tmp_path / "data" / "labels.csv")
    assert attrs["model"] == str((synthetic_run / "run").resolve())
    assert RunConfig.load(synthetic_run / "run" / "config.yaml").data["dataset"] == str(
        (synthetic_run / "data" / "labels.csv").resolve()
    )


@pytest.mark.realdata
@pytest.mark.slow
def test_run_on_ferplus_mini(shared_data, tmp_path):
    """`curate run` on the 2,000 real faces: schema, ranges, and suggestions on flagged faces."""
    res = invoke(
        "run",
        shared_data / "ferplus-mini" / "labels.csv",
        "--out",
        tmp_path / "mini",
        "--pretrain-epochs",
        "0",
        "--epochs",
        "2",
        "--ramp-a",
        "1",
        "--workers",
        "0",
    )
    assert res.exit_code == 0, res.output
    df = records.read_scores(tmp_path / "mini" / "scores.parquet")
    assert len(df) == 2000
    assert df.attrs["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for col in ("target_probs", "latent_distribution", "label_distribution"):
        np.testing.assert_allclose(records.vectors(df, col).sum(axis=1), 1.0, atol=1e-4)
    for col in ("mislabel_score", "ambiguity_score", "knn_disagreement", "uncertainty"):
        assert df[col].between(0, 1).all(), col
    flagged = df[df["verdict"] == "likely_mislabeled"]
    assert len(flagged) > 0
    queued = (df["verdict"] != "ok").to_numpy()
    suggested, given = df["suggested_label"].to_numpy(), df["given_label"].to_numpy()
    assert (suggested[queued] != given[queued]).all()  # a face in a queue is suggested another class
    assert (suggested[~queued] == records.vectors(df, "label_distribution")[~queued].argmax(axis=1)).all()
    assert "top" in res.output and "likely_mislabeled" in res.output
    cleaned = tmp_path / "cleaned.csv"
    res = invoke(
        "export", tmp_path / "mini" / "scores.parquet", "--format", "native", "--policy", "auto", "--out", cleaned
    )
    assert res.exit_code == 0, res.output
    assert "actions:" in res.output and cleaned.exists() and cleaned.with_name("cleaned.csv.audit.json").exists()
    import fiftyone as fo

    ds = fo.load_dataset("mini")
    assert len(ds) == 2000 and "likely-mislabeled" in ds.list_saved_views()
    ds.delete()


def test_given_up_classes_are_those_the_target_branch_stopped_predicting():
    from curate.jobs import given_up_classes

    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    prob_given = np.array([0.01, 0.03, 0.6, np.nan, 0.04, 0.049, np.nan])
    given_up = given_up_classes(prob_given, labels, ["angry", "fear", "sad"])
    assert given_up == pytest.approx({"angry": 0.02, "sad": 0.049})  # fear's mean 0.32; NaN ignored
    assert given_up_classes(prob_given, labels, ["angry", "fear", "sad", "none"]).keys() == given_up.keys()


def test_init_from_an_earlier_run_or_its_exported_model(synthetic_run, tmp_path):
    """--init-from: the run says what it took, records it in config.yaml, and a resume does not
    start over from the earlier model."""
    data = synthetic_run / "data" / "labels.csv"
    for source, kind in ((synthetic_run / "run", "dmue"), (synthetic_run / "run" / "model.pt", "plain")):
        out = tmp_path / kind
        res = invoke(
            "train",
            data,
            "--path-column",
            "path",
            "--label-column",
            "label",
            "--out",
            out,
            "--init-from",
            source,
            *[f for f in FAST if f != "--no-load"],
        )
        assert res.exit_code == 0, res.output
        assert f"started from a {kind} model, classes matched by name" in res.output
        assert RunConfig.load(out / "config.yaml").init_from == str(source.resolve())
    res = invoke(
        "train",
        data,
        "--path-column",
        "path",
        "--label-column",
        "label",
        "--out",
        tmp_path / "dmue",
        "--epochs",
        "2",
        "--workers",
        "0",
        "--image-size",
        "32",
    )
    assert res.exit_code == 0, res.output
    assert "started from" not in res.output and "resuming" in res.output


@pytest.mark.slow
def test_demo_no_load_trains_scores_and_exports_without_fiftyone(tmp_path):
    res = invoke("demo", "--faces", "100", "--epochs", "1", "--no-load", "--out", tmp_path / "demo")
    assert res.exit_code == 0, res.output
    assert "not loaded into FiftyOne (--no-load)" in res.output and "curate app" not in res.output
    assert (tmp_path / "demo" / "run" / "scores.parquet").exists() and (tmp_path / "demo" / "cleaned.csv").exists()
    audit = json.loads((tmp_path / "demo" / "cleaned.csv.audit.json").read_text())
    assert audit["policy"] == "auto" and audit["thresholds"]["confidence"] == DEMO_CONFIDENCE
