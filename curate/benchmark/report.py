"""The benchmark's outputs: per-method detection metrics, the markdown table, JSON and PNG plots.

Truth (FERPlus): a face is mislabeled when ``label_disagrees == 1`` (rows with -1, no crowd
plurality among the 7 classes, are left out); ambiguity truth is ``vote_entropy``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import metrics
from curate.benchmark.signals import ABLATIONS
from curate.data.table import FER2013_CLASSES
from curate.expression_names import ids_in
from curate.scoring.scores import normalised_entropy, softmax


@dataclass
class Method:
    name: str
    score: np.ndarray
    flag: np.ndarray | None = None
    seconds: float | None = None
    suggestion: np.ndarray | None = None
    plot: bool = True
    shared_cpu: bool = False  # timed while another stage ran beside it (protocol docstring)


#: the report's names of the methods the suites single out
DMUE_METHOD = "DMUE mislabel_score (ours)"
CLEANLAB_METHOD = "cleanlab self_confidence + find_label_issues"
MARGIN_METHOD = "cleanlab normalized_margin"
FIFTYONE_METHOD = "FiftyOne Brain mistakenness"


def methods(stages: dict[str, Any]) -> list[Method]:
    """Every detector (and DMUE's ablations) that the finished stages allow."""
    out = []
    if "dmue" in stages:
        s, a = stages["dmue"]
        out.append(Method(DMUE_METHOD, a["mislabel_score"], a["flag"], s.get("wall_s"), a["suggested_label"]))
        for key, label in ABLATIONS.items():
            out.append(Method(f"  ablation: {label}", a[key], plot=False))
    if "dmue_faithful" in stages:
        s, a = stages["dmue_faithful"]
        out.append(
            Method(
                "DMUE faithful (official settings)",
                a["mislabel_score"],
                a["flag"],
                s["wall_s"],
                a["suggested_label"],
                shared_cpu=s.get("shared_cpu", False),
            )
        )
    if "cleanlab" in stages and "kfold" in stages:
        t = stages["kfold"][0]["seconds"] + stages["cleanlab"][0]["seconds"]
        a, oof = stages["cleanlab"][1], stages["kfold"][1]["oof_logits"]
        out.append(Method(CLEANLAB_METHOD, a["self_confidence"], a["flag"], t, oof.argmax(1)))
        out.append(Method(MARGIN_METHOD, a["normalized_margin"], seconds=t))
    if "mistakenness" in stages and "kfold" in stages:
        t = stages["kfold"][0]["seconds"] + stages["mistakenness"][0]["seconds"]
        out.append(Method(FIFTYONE_METHOD, stages["mistakenness"][1]["mistakenness"], seconds=t))
    if "ce_full" in stages:
        s, a = stages["ce_full"]
        out.append(
            Method(
                "kNN label disagreement (CE embeddings)",
                a["knn_disagreement"],
                seconds=s["train_s"] + s["predict_s"] + s["knn_s"],
                shared_cpu=s.get("shared_cpu", False),
            )
        )
        out.append(
            Method(
                "plain CE loss (in-sample)",
                a["loss"],
                seconds=s["train_s"] + s["predict_s"],
                shared_cpu=s.get("shared_cpu", False),
            )
        )
    return out


def truth_of_faces(ids: pd.Series, labels_csv: Path) -> pd.DataFrame:
    """The rows of ``labels_csv`` (FERPlus columns, or a suite's CSV with ``label_disagrees``) for
    the scored faces ``ids`` (a run's ``sample_id``: the paths as written, or resolved against the
    CSV's folder), in their order; a face with no row is an error naming the file to pass."""
    labels = pd.read_csv(labels_csv)
    if not ids.isin(labels["path"]).all():
        labels["path"] = [str((labels_csv.parent / p).resolve()) for p in labels["path"]]
    missing = ids[~ids.isin(labels["path"])]
    if len(missing):
        raise SystemExit(
            f"{len(missing)} scored faces are not rows of {labels_csv} (first: {missing.iloc[0]}); "
            "pass the labels file the run was made from with --labels"
        )
    return labels.set_index("path").loc[ids].reset_index()


def fer2013_to_run(labels: np.ndarray, run_classes: list[str]) -> np.ndarray:
    """(N,) int: ``labels`` (N,), class indices in FER2013's order (``ferplus_label``,
    ``fer2013_label``; -1 = none, e.g. no crowd plurality), as indices into ``run_classes``
    (FER2013's expressions in a run's order and spelling: ``anger`` for ``angry`` too); -1 stays -1.
    ValueError when some FER2013 class is not among ``run_classes``."""
    to_run = ids_in(FER2013_CLASSES, run_classes)
    if to_run is None:
        raise ValueError(f"classes {list(run_classes)} are not FER2013's {list(FER2013_CLASSES)}, in any spelling")
    return to_run[np.asarray(labels)]


def mislabel_truth(truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(known (N,) bool: the face has a crowd plurality, wrong (known.sum(),) bool: mislabeled)."""
    disagrees = truth["label_disagrees"].to_numpy()
    known = disagrees >= 0
    return known, disagrees[known] == 1


def detection_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    truth = results["truth"]
    known, wrong = mislabel_truth(truth)
    crowd = truth["ferplus_label"].to_numpy()
    ks = tuple(k for k in (500, 2000) if k < known.sum())
    rows = []
    for m in methods(results["stages"]):
        row = {
            "method": m.name,
            **metrics.detection_report(wrong, m.score[known], None if m.flag is None else m.flag[known], ks=ks),
        }
        if m.flag is not None:
            row["flagged"] = int(m.flag.sum())
        if m.suggestion is not None and m.flag is not None:
            sel = m.flag & (crowd >= 0)
            row["suggestion_accuracy"] = float(np.mean(m.suggestion[sel] == crowd[sel])) if sel.any() else None
        row["seconds"] = m.seconds
        row["shared_cpu"] = m.shared_cpu
        rows.append(row)
    return rows


def ambiguity_rows(results: dict[str, Any]) -> list[tuple[str, float]]:
    stages, truth = results["stages"], results["truth"]
    entropy = truth["vote_entropy"].to_numpy(dtype=float)
    ok = ~np.isnan(entropy)
    signals = []
    if "dmue" in stages:
        a = stages["dmue"][1]
        signals += [
            ("DMUE ambiguity_score (ours)", a["ambiguity_score"]),
            ("DMUE entropy of target probabilities", a["target_entropy"]),
            ("DMUE 1 - sigma", a["one_minus_sigma"]),
        ]
    if "dmue_faithful" in stages:
        signals.append(("DMUE faithful ambiguity_score", stages["dmue_faithful"][1]["ambiguity_score"]))
    if "kfold" in stages:
        signals.append(
            (
                "entropy of K-fold CE probabilities (cleanlab's input)",
                normalised_entropy(softmax(stages["kfold"][1]["oof_logits"])),
            )
        )
    if "ce_full" in stages:
        signals.append(("entropy of in-sample CE probabilities", stages["ce_full"][1]["entropy"]))
    return [(name, metrics.spearman(s[ok], entropy[ok])) for name, s in signals]


SHARED_MARK = "†"
SHARED_NOTE = (
    "ran beside another stage, the two splitting the cores, so this time is longer than the stage "
    "alone would take; the other times are of stages that ran alone."
)


def cell(x: Any, spec: str = ".3f") -> str:
    """A table cell: ``x`` formatted with ``spec``, or — for None (no figure)."""
    return "—" if x is None else format(x, spec)


def _seconds(s: float | None) -> str:
    return "—" if s is None else f"{s / 60:.1f} min"


def detection_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the detection table for ``detection_rows``."""
    lines = [
        (
            "| method | AUROC | AP | P@500 | P@2000 | FNR@budget | flag precision | flag recall | flagged | "
            "suggestion acc. | time |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['auroc']:.3f} | {r['ap']:.3f} | {cell(r.get('p@500'))} | "
            f"{cell(r.get('p@2000'))} | {r['fnr_at_noise_rate']:.3f} | {cell(r.get('flag_precision'))} | "
            f"{cell(r.get('flag_recall'))} | {r.get('flagged', '—')} | {cell(r.get('suggestion_accuracy'))} | "
            f"{_seconds(r['seconds'])}{SHARED_MARK if r.get('shared_cpu') else ''} |"
        )
    if any(r.get("shared_cpu") for r in rows):
        lines += ["", f"{SHARED_MARK} {SHARED_NOTE}"]
    return lines


def ambiguity_table(amb: list[tuple[str, float]]) -> list[str]:
    """Markdown lines of the ambiguity table for ``ambiguity_rows``."""
    return ["| signal | Spearman |", "|---|---|", *(f"| {n} | {v:.3f} |" for n, v in amb)]


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], amb: list[tuple[str, float]]) -> str:
    stages = results["stages"]
    known, wrong = mislabel_truth(results["truth"])
    noise = float(np.mean(wrong))
    cfg = results["config"]
    lines = [
        (
            f"Benchmark run {results['date']}: {results['faces']} training faces ({known.sum()} with a crowd "
            f"plurality, {noise:.1%} mislabeled), {results['eval_faces']} evaluation faces; backbone "
            f"{cfg.get('backbone', 'fer_cnn')}, "
            f"{cfg['epochs']} epochs per model, {cfg['folds']}-fold CE for cleanlab and FiftyOne, k = {cfg['k']}"
            + (
                ", every model's predictions averaged over each face and its mirror image."
                if cfg.get("tta", "none") == "hflip"
                else "."
            )
        ),
        "",
        (
            "**Label-error detection** (truth: FER2013 label != FERPlus crowd plurality). Time = compute "
            "to get the scores from the raw faces, on this machine."
        ),
        "",
        *detection_table(rows),
        "",
        "**Ambiguity** (Spearman correlation with the FERPlus vote entropy):",
        "",
        *ambiguity_table(amb),
    ]
    acc = []
    if "dmue" in stages and "ce_full" in stages:
        acc.append(
            f"| FER2013 labels (real noise) | {results['faces']} | {stages['dmue'][0]['eval_accuracy']:.3f} | "
            f"{stages['ce_full'][0]['eval_accuracy']:.3f} |"
        )
    for name, (s, _) in stages.items():
        if name.startswith("flip-"):
            acc.append(
                f"| FERPlus plurality, {s['rate']:.0%} flipped | {s['faces']} | {s['dmue_accuracy']:.3f} | "
                f"{s['ce_accuracy']:.3f} |"
            )
    if acc:
        lines += [
            "",
            "**Accuracy under noise** (evaluation faces, against the FERPlus plurality):",
            "",
            "| training labels | faces | DMUE | CE |",
            "|---|---|---|---|",
            *acc,
        ]
    lines += ["", "**Speed and cost** (same run):", "", "| measure | value |", "|---|---|", *speed_rows(stages)]
    return "\n".join(lines) + "\n"


def speed_rows(stages: dict[str, Any]) -> list[str]:
    out = []
    if "dmue" in stages:
        d = stages["dmue"][0]
        out.append(
            f"| `curate run` (train, score, neighbours, flags) | {_seconds(d['wall_s'])}, "
            f"peak memory {d['peak_rss_mib']:.0f} MiB |"
        )
        if "train_images_per_s" in stages.get("kfold", ({},))[0]:  # CE from the K-fold trainings: alone, like DMUE
            ce = stages["kfold"][0]["train_images_per_s"]
            out.append(
                f"| training images/s, DMUE / CE | {d['train_images_per_s']:.0f} / "
                f"{ce:.0f} = {d['train_images_per_s'] / ce:.2f} |"
            )
    if "kfold" in stages:
        out.append(f"| K-fold CE (cleanlab/FiftyOne input) | {_seconds(stages['kfold'][0]['seconds'])} |")
    if "speed" in stages:
        s = stages["speed"][0]
        out += [(f"| `curate score` one view, one auxiliary branch per face / plain inference throughput "
                 f"({s['faces']} faces read from disk; mining pass fp32, bf16) | "
                 f"{s['plain_inference_s'] / s['score_fp32_s']:.2f}, {s['plain_inference_s'] / s['score_bf16_s']:.2f} |"),
                (f"| `curate score` one view with the auxiliary consensus (all C branches) / plain inference | "
                 f"{s['plain_inference_s'] / s['score_consensus_s']:.2f} |"),
                (f"| `curate score` with its defaults (mirror-image TTA: two views; consensus) / plain inference | "
                 f"{s['plain_inference_s'] / s['score_hflip_s']:.2f} |"),
                (f"| bf16 mining vs fp32: max change of mislabel / ambiguity score, suggested labels changed | "
                 f"{s['bf16_max_abs_diff_mislabel_score']:.1e} / {s['bf16_max_abs_diff_ambiguity_score']:.1e}, "
                 f"{s['bf16_suggested_label_changed']:.2%} |"),
                (f"| all-kNN k=10 on {s['knn_n']} x {s['knn_dim']} real embeddings: faiss exact / sklearn brute | "
                f"{s['faiss_exact_s']:.2f} s / {s['sklearn_s']:.2f} s = {s['faiss_exact_s'] / s['sklearn_s']:.2f} |"),
                (f"| faiss IVF / exact, recall@10 | {s['faiss_ivf_s'] / s['faiss_exact_s']:.2f}, recall "
                f"{s['ivf_recall']:.3f} |"),
                f"| FiftyOne bulk load of the scores | {s['fiftyone_load_s']:.1f} s |"]  # fmt: skip
    return out


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """ROC, precision-recall, precision@k and score-histogram PNGs (no face images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    known, wrong = mislabel_truth(results["truth"])
    shown = [m for m in methods(results["stages"]) if m.plot]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(12, 5))
    for m in shown:
        fpr, tpr, _ = roc_curve(wrong, m.score[known])
        roc.plot(fpr, tpr, label=f"{m.name} ({metrics.auroc(wrong, m.score[known]):.3f})")
        p, r, _ = precision_recall_curve(wrong, m.score[known])
        pr.plot(r, p, label=f"{m.name} ({metrics.average_precision(wrong, m.score[known]):.3f})")
    roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)")
    pr.axhline(wrong.mean(), color="k", ls=":", lw=0.8)
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall (AP)")
    for ax in (roc, pr):
        ax.legend(fontsize=7, loc="lower right" if ax is roc else "upper right")
    paths.append(_save(fig, out / "roc_pr.png"))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ks = np.unique(np.linspace(10, known.sum(), 60).astype(int))
    for m in shown:
        order = np.argsort(-m.score[known], kind="stable")
        hits = np.cumsum(wrong[order])
        ax.plot(ks, hits[ks - 1] / ks, label=m.name)
    ax.set(xlabel="faces reviewed (k)", ylabel="precision@k", title="Precision at review budget k")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "precision_at_k.png"))
    # one panel per family: ours, cleanlab, FiftyOne, kNN (not the faithful variant or a 2nd cleanlab score)
    panels = [m for m in shown if "faithful" not in m.name and "normalized_margin" not in m.name][:4]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
    for ax, m in zip(axes[0], panels, strict=True):
        s = m.score[known]
        bins = np.linspace(s.min(), s.max(), 40)
        ax.hist(s[~wrong], bins=bins, alpha=0.6, label="label agrees with crowd", density=True)
        ax.hist(s[wrong], bins=bins, alpha=0.6, label="mislabeled (crowd disagrees)", density=True)
        ax.set(title=m.name, xlabel="score")
        ax.title.set_fontsize(8)
    axes[0][0].legend(fontsize=7)
    paths.append(_save(fig, out / "score_histograms.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(results: dict[str, Any], out: Path, *, plots_dir: Path | None = None) -> dict[str, Any]:
    """Write ``out/results.md``, ``out/results.json`` and the PNGs (``plots_dir``, default ``out``)."""
    results.setdefault("date", dt.date.today().isoformat())
    rows = detection_rows(results)
    amb = ambiguity_rows(results)
    text = markdown(results, rows, amb)
    figures = plots(results, plots_dir or out)
    record = {"date": results["date"], "config": results["config"], "faces": results["faces"],
              "detection": rows, "ambiguity": dict(amb),
              "stages": {name: s for name, (s, _) in results["stages"].items()},
              "plots": [str(p) for p in figures]}  # fmt: skip
    write_texts(out, {"results.md": text, "results.json": json.dumps(record, indent=1, default=float)})
    return record


def write_texts(out: Path, texts: dict[str, str]) -> None:
    """Write each ``{file name: text}`` into ``out``, atomically."""
    for name, body in texts.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(body)
        tmp.replace(out / name)
