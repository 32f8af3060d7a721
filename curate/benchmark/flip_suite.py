"""The flip suite: label-error detection where every error is known, over noise kinds and rates.

Labels are the FERPlus crowd plurality of a stratified subset of the Training faces (rows without a
plurality among the 7 classes are left out), with a share of them flipped:

* ``uniform``: each flipped face moves to a uniformly drawn other class;
* ``classdep``: each flipped face of crowd class c moves to c's most confused class, the FER2013
  label most often given to faces the crowd calls c (angry -> fear, happy -> neutral, ...);
* ``clean``: no flip (every label is the crowd's), where a good tool flags almost nothing.

Each setting is a ``Benchmark`` folder of its own (``OUT/<setting>/``: DMUE through ``curate run``,
K-fold CE with cleanlab and FiftyOne mistakenness, in-sample CE loss and kNN), so it resumes stage
by stage. Truth: ``label_disagrees`` = the face was flipped; accuracy is measured on PublicTest
against the crowd. ``OUT/flips.md`` and ``OUT/flips.json`` summarise every setting.

With ``source_faces`` > 0 every setting also runs ``dmue_init``: DMUE started with ``--init-from`` a
model trained once (``OUT/source/run``) on that many other Training faces with their FER2013 labels,
the case of a team that cleaned an earlier, larger set of the same kind. With ``cross_fit`` K > 0
each DMUE stage is also run as ``<stage>_cf<K>``: the same full model (its run directory copied)
plus K fold models whose out-of-fold outputs set the flag count, as ``curate run`` does below
10,000 faces; the ranking is unchanged, so the table reports what the count does.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import metrics
from curate.benchmark.protocol import BenchConfig, Benchmark, Log, train_init_source
from curate.benchmark.report import (
    CLEANLAB_METHOD,
    DMUE_METHOD,
    FIFTYONE_METHOD,
    MARGIN_METHOD,
    cell,
    detection_rows,
    mislabel_truth,
    write_texts,
)
from curate.benchmark.splits import (
    flip_labels,
    init_source,
    stratified_sample,
    training_and_public_test,
    write_split,
)
from curate.benchmark.stages import Computed
from curate.data.table import FER2013_CLASSES
from curate.records import read_metadata
from curate.run_config import check_fold_count

KINDS = ("uniform", "classdep")
BASELINES = (CLEANLAB_METHOD, MARGIN_METHOD, FIFTYONE_METHOD,
             "kNN label disagreement (CE embeddings)", "plain CE loss (in-sample)")  # fmt: skip


@dataclass
class FlipSuiteConfig:
    """``faces``: the stratified subset (of Training faces with a crowd plurality) every setting
    relabels; ``rates`` x ``kinds`` plus one clean setting. The models get the ``curate run``
    budget (``epochs``, ``backbone``) and the benchmark's K-fold CE (``folds``); ``source_faces``
    other Training faces train the ``--init-from`` source (0: no warm-started rows). ``cross_fit``
    K > 0: every DMUE stage is also judged with the flag count from K cross-fitted fold models
    (``curate run --cross-fit K``, all K trained; the size table trains 1-3 of 3 below 10,000 faces), its full model
    reused, so only the K fold models are trained."""

    labels_csv: Path
    out: Path
    faces: int = 5000
    rates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    kinds: tuple[str, ...] = KINDS
    epochs: int = 12
    folds: int = 3
    backbone: str = "fer_cnn"
    source_faces: int = 0
    cross_fit: int = 0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        check_fold_count(self.cross_fit)
        if self.source_faces < 0:
            raise ValueError(f"source faces must be 0 (no --init-from rows) or more, not {self.source_faces}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown flip kinds {unknown}; choose from {list(KINDS)}")
        if not all(0 < r < 1 for r in self.rates):
            raise ValueError(f"flip rates must lie in (0, 1), not {list(self.rates)}")

    @property
    def source_csv(self) -> Path:
        """The ``--init-from`` source's faces (written when ``source_faces`` > 0)."""
        return self.out / "source" / "train.csv"

    def settings(self) -> list[tuple[str, str, float]]:
        """(folder name, kind, rate) of every setting: clean first."""
        return [("clean", "uniform", 0.0)] + [(f"{k}-{r:g}", k, r) for k in self.kinds for r in self.rates]


def confusion_map(crowd: np.ndarray, fer2013: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) for each crowd class c, the FER2013 label most often given to faces the crowd calls c
    among those FER2013 labels otherwise (c itself never; a class without such faces maps to the
    next class)."""
    out = (np.arange(num_classes) + 1) % num_classes
    for c in range(num_classes):
        other = fer2013[(crowd == c) & (fer2013 != c)]
        if len(other):
            out[c] = np.bincount(other, minlength=num_classes).argmax()
    return out


def flip_to_confused(labels: np.ndarray, rate: float, confused: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``labels`` with round(rate * N) rows moved to ``confused[label]``."""
    out = labels.copy()
    rows = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    out[rows] = confused[labels[rows]]
    return out


def write_settings(cfg: FlipSuiteConfig) -> list[tuple[str, Path]]:
    """Write ``OUT/<setting>/train.csv`` and ``eval.csv`` (PublicTest) for every setting, once;
    returns (name, folder) pairs. The same faces in every setting; flips drawn with ``seed``. With
    ``source_faces``, also ``OUT/source/train.csv``: a stratified draw of the other Training faces
    (with or without a crowd plurality) with their FER2013 labels."""
    every, evaluation = training_and_public_test(cfg.labels_csv)
    train = every[every["ferplus_label"] >= 0].reset_index(drop=True)
    C = len(FER2013_CLASSES)
    confused = confusion_map(train["ferplus_label"].to_numpy(), train["fer2013_label"].to_numpy(), C)
    rng = np.random.default_rng(cfg.seed)
    faces = train.iloc[stratified_sample(train["ferplus_label"].to_numpy(), cfg.faces, rng)].reset_index(drop=True)
    if cfg.source_faces and not cfg.source_csv.exists():
        outside = every[~every["path"].isin(faces["path"])].reset_index(drop=True)
        if cfg.source_faces > len(outside):
            raise ValueError(
                f"{cfg.source_faces} source faces asked for, {len(outside)} Training faces are outside the subset"
            )
        write_split(init_source(outside, cfg.source_faces, np.random.default_rng([cfg.seed, 1])), cfg.source_csv)
    crowd = faces["ferplus_label"].to_numpy()
    written = []
    for name, kind, rate in cfg.settings():
        folder = cfg.out / name
        written.append((name, folder))
        if (folder / "train.csv").exists():
            continue
        setting_rng = np.random.default_rng([cfg.seed, KINDS.index(kind), round(rate * 1000)])
        if rate == 0:
            noisy = crowd.copy()
        elif kind == "uniform":
            noisy = flip_labels(crowd, rate, C, setting_rng)
        else:
            noisy = flip_to_confused(crowd, rate, confused, setting_rng)
        table = faces.assign(label=np.asarray(FER2013_CLASSES)[noisy], label_disagrees=(noisy != crowd).astype(int))
        write_split(evaluation, folder / "eval.csv")
        write_split(table, folder / "train.csv")  # last: its presence marks the setting written
    return written


def flag_summary(flag: np.ndarray, truth: pd.DataFrame, given: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """One detector's flags (N,) bool against the truth: share flagged (and over the true rate),
    precision, recall, and each class's share of its correctly labelled faces flagged."""
    known, wrong = mislabel_truth(truth)
    correct = truth["label_disagrees"].to_numpy() != 1
    true_rate = float(np.mean(wrong))
    per_class = {classes[c]: float(flag[correct & (given == c)].mean())
                 for c in range(len(classes)) if (correct & (given == c)).any()}  # fmt: skip
    f = flag[known]
    return {
        "share": float(f.mean()),
        "share_over_true": float(f.mean() / true_rate) if true_rate else None,
        "precision": float(wrong[f].mean()) if f.any() else None,
        "recall": float(f[wrong].mean()) if wrong.any() else None,
        "correct_flagged_by_class": per_class,
        "worst_class_correct_flagged": max(per_class.values()),
    }


def mean_p_given(computed: Computed, given: np.ndarray, classes: list[str]) -> dict[str, float]:
    """A DMUE stage's mean target p[given label] over the faces given each class."""
    p_given = 1 - computed[1]["one_minus_p_given"]
    return {classes[c]: float(p_given[given == c].mean()) for c in range(len(classes)) if (given == c).any()}


def setting_summary(results: dict[str, Any], given: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The figures of one setting (``given`` (N,) int: the training labels): each detector's AUROC /
    AP, DMUE's and cleanlab's flags (``flag_summary``), DMUE's mean target p[given] per class, and
    PublicTest accuracy."""
    stages, truth = results["stages"], results["truth"]
    known, wrong = mislabel_truth(truth)
    rows = {r["method"]: r for r in detection_rows(results)} if wrong.any() else {}  # clean labels: no ranking
    out: dict[str, Any] = {"true_rate": float(np.mean(wrong)), "faces": int(known.sum()),
                           "auroc": {m: rows[m]["auroc"] for m in (DMUE_METHOD, *BASELINES) if m in rows},
                           "ap": {m: rows[m]["ap"] for m in (DMUE_METHOD, *BASELINES) if m in rows}}  # fmt: skip
    for name in ("dmue", "cleanlab"):
        out[f"{name}_flags"] = flag_summary(stages[name][1]["flag"], truth, given, classes)
    out["dmue_mean_p_given"] = mean_p_given(stages["dmue"], given, classes)
    out["accuracy"] = {"dmue": stages["dmue"][0]["eval_accuracy"], "ce": stages["ce_full"][0]["eval_accuracy"]}
    return out


def dmue_summary(computed: Computed, truth: pd.DataFrame, given: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """One more DMUE stage of a setting (warm-started, cross-fitted): AUROC / AP (None on clean
    labels), flags, mean p[given] per class and PublicTest accuracy."""
    known, wrong = mislabel_truth(truth)
    score = computed[1]["mislabel_score"][known]
    ranked = bool(wrong.any())
    return {
        "auroc": metrics.auroc(wrong, score) if ranked else None,
        "ap": metrics.average_precision(wrong, score) if ranked else None,
        "flags": flag_summary(computed[1]["flag"], truth, given, classes),
        "mean_p_given": mean_p_given(computed, given, classes),
        "accuracy": computed[0]["eval_accuracy"],
    }


def _best_baseline(summary: dict[str, Any]) -> str:
    """'AUROC (method)' of the best baseline, or — without errors to rank."""
    ranked = [m for m in BASELINES if m in summary["auroc"]]
    if not ranked:
        return "—"
    name = max(ranked, key=lambda m: summary["auroc"][m])
    return f"{summary['auroc'][name]:.3f} ({name})"


def _flag_cells(flags: dict[str, Any], p_given: dict[str, float]) -> str:
    """Table cells: flagged (x true) | precision / recall | worst class | lowest class mean p[given]."""
    worst = max(flags["correct_flagged_by_class"], key=flags["correct_flagged_by_class"].get)
    low = min(p_given, key=p_given.get)
    ratio = f" ({flags['share_over_true']:.2f}x)" if flags["share_over_true"] is not None else ""
    return (f"{flags['share']:.3f}{ratio} | {cell(flags['precision'])} / {cell(flags['recall'])} | "
            f"{flags['worst_class_correct_flagged']:.3f} ({worst}) | {p_given[low]:.3f} ({low})")  # fmt: skip


def _stage_table(rows: dict[str, dict[str, Any]]) -> str:
    """A table of one more DMUE stage (``dmue_summary``) over the settings in ``rows``."""
    lines = ["| labels | AUROC / AP | flagged (x true) | flag P / R | worst class: correct faces flagged | "
             "min class p[given] | accuracy |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, w in rows.items():
        skipped = " (no folds: a class has fewer than 2 faces)" if w.get("fold_models") == 0 else ""
        lines.append(
            f"| {name}{skipped} | {cell(w['auroc'])} / {cell(w['ap'])} | "
            f"{_flag_cells(w['flags'], w['mean_p_given'])} | {w['accuracy']:.3f} |"
        )
    return "\n".join(lines)


def markdown(record: dict[str, Any]) -> str:
    cfg = record["config"]
    lines = [
        (f"Flip suite run {record['date']}: {cfg['faces']} Training faces with a crowd plurality, labels = the "
         f"crowd plurality with a share flipped; backbone {cfg['backbone']}, {cfg['epochs']} epochs per model, "
         f"{cfg['folds']}-fold CE for cleanlab and FiftyOne; accuracy on PublicTest against the crowd."),
        "",
        ("| labels | true rate | DMUE AUROC / AP | best baseline AUROC | DMUE flagged (x true) | DMUE flag P / R | "
         "worst class: correct faces flagged | min class p[given] | cleanlab flagged / P | accuracy DMUE / CE |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, s in record["settings"].items():
        c = s["cleanlab_flags"]
        lines.append(
            f"| {name} | {s['true_rate']:.3f} | {cell(s['auroc'].get(DMUE_METHOD))} / {cell(s['ap'].get(DMUE_METHOD))} | "
            f"{_best_baseline(s)} | {_flag_cells(s['dmue_flags'], s['dmue_mean_p_given'])} | "
            f"{c['share']:.3f} / {cell(c['precision'])} | {s['accuracy']['dmue']:.3f} / {s['accuracy']['ce']:.3f} |"
        )
    tables = [("init", f"DMUE started with --init-from a model trained on {cfg['source_faces']} other Training faces "
                        "(their FER2013 labels), the same budget:")]  # fmt: skip
    tables += [(key, f"DMUE {start}, the flag count from {cfg.get('cross_fit')} cross-fitted fold models (the ranking "
                     "is the same model's as above):")
               for key, start in (("cross_fit", "from scratch"), ("init_cross_fit", "started with --init-from"))]  # fmt: skip
    for key, title in tables:
        rows = {name: s[key] for name, s in record["settings"].items() if key in s}
        if rows:
            lines += ["", title, "", _stage_table(rows)]
    return "\n".join(lines) + "\n"


def cross_fit_stage(stage: str, k: int) -> str:
    """The name of DMUE stage ``stage`` judged with the count from ``k`` fold models."""
    return f"{stage}_cf{k}"


def _cross_fitted(bench: Benchmark, stage: str, flags: tuple[str, ...], k: int) -> Computed:
    """``curate run --cross-fit k`` as stage ``stage``_cf``k``, starting from a copy of ``stage``'s
    run directory: its full model is reused (already trained) and only the fold models train."""
    run_dir = bench.store.dir(cross_fit_stage(stage, k)) / "run"
    if not run_dir.exists():
        done = bench.store.dir(stage) / "run"
        partial = run_dir.with_name("run.partial")  # renamed when complete: an interrupted copy is redone
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(done, partial)
        partial.rename(run_dir)
    return bench.curate_run(cross_fit_stage(stage, k), *flags, f"--cross-fit={k}")


def run_flip_suite(cfg: FlipSuiteConfig, log: Log = print) -> dict[str, Any]:
    """Run (or resume) every setting; write ``OUT/flips.md`` and ``OUT/flips.json``; return the record."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    settings = write_settings(cfg)
    source = train_init_source(cfg.source_csv, cfg.epochs, cfg.backbone, cfg.seed, log) if cfg.source_faces else None
    for name, folder in settings:
        log(f"[flips] setting {name}")
        bench = Benchmark(BenchConfig(labels_csv=cfg.labels_csv, out=folder, epochs=cfg.epochs, backbone=cfg.backbone,
                                      folds=cfg.folds, seed=cfg.seed, faithful=False, flip_rates=(),
                                      progress=cfg.progress), log)  # fmt: skip
        results = bench.detection()
        summary = summaries[name] = setting_summary(results, bench.given, list(FER2013_CLASSES))
        stages = {"dmue": ()}
        if source is not None:
            warm_flags = stages["dmue_init"] = (f"--init-from={source}",)
            warm = bench.store.get("dmue_init", lambda b=bench, f=warm_flags: b.curate_run("dmue_init", *f))
            summary["init"] = dmue_summary(warm, results["truth"], bench.given, list(FER2013_CLASSES))
        if cfg.cross_fit:
            for stage, flags in stages.items():
                folded_stage = cross_fit_stage(stage, cfg.cross_fit)
                folded = bench.store.get(folded_stage,
                                         lambda b=bench, s=stage, f=flags: _cross_fitted(b, s, f, cfg.cross_fit))  # fmt: skip
                key = "init_cross_fit" if stage == "dmue_init" else "cross_fit"
                summary[key] = dmue_summary(folded, results["truth"], bench.given, list(FER2013_CLASSES))
                # the fold models the scores were made with, as the run recorded them (0: a class had < 2 faces)
                scores = bench.store.dir(folded_stage) / "run" / "scores.parquet"
                summary[key]["fold_models"] = read_metadata(scores)["cross_fit"]
    record = {"date": dt.date.today().isoformat(),
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "settings": summaries}  # fmt: skip
    write_texts(cfg.out, {"flips.md": markdown(record), "flips.json": json.dumps(record, indent=1, default=float)})
    return record
