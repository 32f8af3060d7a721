"""The learning-curve suite: label-error detection against the number of faces a curator brings.

Nested stratified subsets of the Training faces (every smaller set inside the larger ones), with
their own FER2013 labels; truth: the FERPlus crowd (``label_disagrees``), accuracy on PublicTest.
Each size is a ``Benchmark`` folder (``OUT/n<size>/``) with the same detectors as the flip suite
(DMUE through ``curate run``, K-fold CE with cleanlab and FiftyOne mistakenness, in-sample CE loss,
kNN), every model on the same backbone and epochs, plus

* ``dmue_init``: DMUE started with ``--init-from`` a run trained on the Training faces outside the
  largest subset (stage ``OUT/source/``, trained once), the case of a team that trained on a large
  set and now cleans a new small batch;
* ``dmue_warm`` (with ``pretrain_epochs`` > 0): DMUE started from the self-supervised stage
  (``curate run --pretrain-epochs``) on the subset's own images, labels unused.

Cross-fitting is not a curve: it changes only how many faces are flagged, not the ranking these
curves measure (docs/small-data.md).

``OUT/curve.md`` and ``OUT/curve.json`` hold AUROC / AP per size and method; ``OUT/curve.png`` the
plot.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate import metrics
from curate.benchmark.protocol import BenchConfig, Benchmark, Log, train_init_source
from curate.benchmark.report import (
    CLEANLAB_METHOD,
    DMUE_METHOD,
    FIFTYONE_METHOD,
    detection_rows,
    mislabel_truth,
    write_texts,
)
from curate.benchmark.splits import init_source, stratified_sample, training_and_public_test, write_split

CURVES = {"dmue": "DMUE from scratch", "dmue_init": "DMUE, --init-from",
          "dmue_warm": "DMUE, self-supervised start", "cleanlab": "cleanlab (K-fold CE)", "mistakenness": "FiftyOne mistakenness (K-fold CE)"}  # fmt: skip


@dataclass
class CurveSuiteConfig:
    """``sizes``: the subset sizes (faces); every model trains ``epochs`` epochs on ``backbone``;
    ``folds``: the K-fold CE behind cleanlab and FiftyOne; ``source_faces``: a stratified share of
    the faces outside the largest subset for the ``--init-from`` source (None: all of them);
    ``pretrain_epochs``: epochs of the self-supervised start of the ``dmue_warm`` curve (0: no such
    curve)."""

    labels_csv: Path
    out: Path
    sizes: tuple[int, ...] = (1000, 2000, 5000, 10000)
    epochs: int = 12
    folds: int = 3
    source_faces: int | None = None
    pretrain_epochs: int = 0
    backbone: str = "fer_cnn"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 100:
            raise ValueError(f"curve sizes must be at least 100 faces, not {list(self.sizes)}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"curve pretrain epochs must be >= 0, not {self.pretrain_epochs}")
        self.sizes = tuple(sorted(self.sizes))


def write_subsets(cfg: CurveSuiteConfig) -> tuple[list[tuple[int, Path]], Path]:
    """Write ``OUT/n<size>/train.csv`` + ``eval.csv`` (PublicTest) for every size and
    ``OUT/source/train.csv`` (the Training faces outside the largest subset), once; returns
    ((size, folder) pairs, the source CSV). Subsets are nested: each is a stratified draw from the
    next larger one."""
    train, evaluation = training_and_public_test(cfg.labels_csv)
    if cfg.sizes[-1] >= len(train):
        raise ValueError(f"the largest curve size {cfg.sizes[-1]} leaves no Training faces for the --init-from source")
    rng = np.random.default_rng(cfg.seed)
    rows = stratified_sample(train["fer2013_label"].to_numpy(), cfg.sizes[-1], rng)
    source = cfg.out / "source" / "train.csv"
    # drawn on every call, written once: the subsets below take the same draws on a resume
    outside = init_source(train.drop(index=rows).reset_index(drop=True), cfg.source_faces, rng)
    if not source.exists():
        write_split(outside, source)
    written = []
    for size in reversed(cfg.sizes):
        rows = rows[stratified_sample(train["fer2013_label"].to_numpy()[rows], size, rng)]
        folder = cfg.out / f"n{size}"
        written.append((size, folder))
        if not (folder / "train.csv").exists():
            write_split(evaluation, folder / "eval.csv")
            write_split(train.iloc[rows].reset_index(drop=True), folder / "train.csv")
    return sorted(written), source


def size_summary(results: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """AUROC / AP of every curve at one size, and PublicTest accuracy of the DMUE models and CE."""
    rows = {r["method"]: r for r in detection_rows(results)}
    known, wrong = mislabel_truth(results["truth"])
    out = {
        "faces": int(known.sum()),
        "true_rate": float(np.mean(wrong)),
        "auroc": {"dmue": rows[DMUE_METHOD]["auroc"], "cleanlab": rows[CLEANLAB_METHOD]["auroc"],
                  "mistakenness": rows[FIFTYONE_METHOD]["auroc"]},
        "ap": {"dmue": rows[DMUE_METHOD]["ap"], "cleanlab": rows[CLEANLAB_METHOD]["ap"],
               "mistakenness": rows[FIFTYONE_METHOD]["ap"]},
        "accuracy": {"dmue": results["stages"]["dmue"][0]["eval_accuracy"],
                     "ce": results["stages"]["ce_full"][0]["eval_accuracy"]},
    }  # fmt: skip
    for stage, computed in extra.items():
        score = computed[1]["mislabel_score"][known]
        out["auroc"][stage] = metrics.auroc(wrong, score)
        out["ap"][stage] = metrics.average_precision(wrong, score)
        out["accuracy"][stage] = computed[0]["eval_accuracy"]
    return out


def markdown(record: dict[str, Any]) -> str:
    cfg = record["config"]
    curves = [c for c in CURVES if any(c in s["auroc"] for s in record["sizes"].values())]
    lines = [
        (f"Learning-curve suite run {record['date']}: nested stratified subsets of the Training faces with "
         f"their FER2013 labels, truth = the FERPlus crowd; backbone {cfg['backbone']}, {cfg['epochs']} epochs "
         f"for every model, {cfg['folds']}-fold CE for cleanlab and FiftyOne; `--init-from` a DMUE run on the "
         f"{record['source_faces']:,} Training faces outside the largest subset."),
        "",
        "| faces | noise | " + " | ".join(f"{CURVES[c]} AUROC / AP" for c in curves) + " | accuracy DMUE / CE |",
        "|---|---|" + "---|" * len(curves) + "---|",
    ]  # fmt: skip
    for size, s in record["sizes"].items():
        cells = [f"{s['auroc'][c]:.3f} / {s['ap'][c]:.3f}" if c in s["auroc"] else "—" for c in curves]
        lines.append(
            f"| {int(size):,} | {s['true_rate']:.3f} | " + " | ".join(cells)
            + f" | {s['accuracy']['dmue']:.3f} / {s['accuracy']['ce']:.3f} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(record: dict[str, Any], path: Path, title: str | None = None) -> None:
    """AUROC and AP against faces (log scale), one line per curve; ``title`` replaces the suite's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in record["sizes"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("auroc", "ap"), strict=True):
        for curve, name in CURVES.items():
            points = [(n, s[metric][curve]) for n, s in zip(sizes, record["sizes"].values()) if curve in s[metric]]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("faces")
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"Label-error detection against dataset size (curve suite, {record['date']})")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def run_curve_suite(cfg: CurveSuiteConfig, log: Log = print) -> dict[str, Any]:
    """Run (or resume) every size; write ``OUT/curve.md``, ``OUT/curve.json`` and ``OUT/curve.png``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    subsets, source_csv = write_subsets(cfg)
    source = train_init_source(source_csv, cfg.epochs, cfg.backbone, cfg.seed, log)
    summaries = {}
    for size, folder in subsets:
        log(f"[curve] {size} faces")
        bench = Benchmark(BenchConfig(labels_csv=cfg.labels_csv, out=folder, epochs=cfg.epochs, backbone=cfg.backbone,
                                      folds=cfg.folds, seed=cfg.seed, faithful=False, flip_rates=(),
                                      progress=cfg.progress), log)  # fmt: skip
        results = bench.detection()
        extra = {
            "dmue_init": bench.store.get(
                "dmue_init", lambda b=bench: b.curate_run("dmue_init", f"--init-from={source}")
            )
        }
        if cfg.pretrain_epochs:
            extra["dmue_warm"] = bench.store.get(
                "dmue_warm", lambda b=bench: b.curate_run("dmue_warm", f"--pretrain-epochs={cfg.pretrain_epochs}")
            )
        summaries[str(size)] = size_summary(results, extra)
    with open(source_csv) as fh:
        source_faces = sum(1 for _ in fh) - 1  # rows below the header
    record = {"date": dt.date.today().isoformat(),
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "source_faces": source_faces, "sizes": summaries}  # fmt: skip
    write_texts(cfg.out, {"curve.md": markdown(record), "curve.json": json.dumps(record, indent=1, default=float)})
    plot(record, cfg.out / "curve.png")
    return record
