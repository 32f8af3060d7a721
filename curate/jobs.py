"""The jobs behind the commands: train DMUE on a LabelTable, score a table, the whole run.

Each job writes into a run directory (``curate.runs``) and can be re-run: training resumes from
its last checkpoint (a finished training is not repeated), scoring rewrites its file atomically.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.cross_fit import Fold, budget, folds_for, saved_folds, too_small_classes, training_table
from curate.data.table import VOTE_PREFIX, classes_of, name_class_ids, unlabeled_rows
from curate.data.torch_dataset import FaceDataset, train_transform
from curate.expression_names import ids_in, match_classes
from curate.pretrain import PretrainInterrupted, pretrain_stage
from curate.run_config import RunConfig
from curate.runs import RunPaths, load_model, write_json
from curate.scoring.pipeline import ScoreResult, score_table
from curate.scoring.scores import ScoreConfig
from curate.sizing import apply as apply_size_defaults
from dmue_core.config import DMUEConfig
from dmue_core.distributed import DistContext, resolve_device
from dmue_core.export import save_target_model
from dmue_core.model import DMUE
from dmue_core.selfsup import WEIGHTS, Backbone
from dmue_core.trainer import load_dynamics, train
from dmue_core.warm_start import from_dmue, from_plain

Log = Callable[[str], Any]
#: the self-supervised stage's folder inside a run directory (``curate.pretrain``)
PRETRAIN_DIR = "pretrain"

#: classes whose faces get a mean target probability of their label below this in the last
#: training epoch are reported as given up by the target branch
GIVEN_UP_BELOW = 0.05


class TrainingInterrupted(RuntimeError):
    """Training was stopped (Ctrl-C, SIGTERM) after saving a resumable checkpoint."""


def faces_digest(table: pd.DataFrame) -> dict[str, Any]:
    """{"faces": N, "sha256": digest of the ordered (sample_id, label) pairs}: what a run trained on."""
    text = "\n".join(f"{sid}\t{label}" for sid, label in zip(table["sample_id"], table["label"]))
    return {"faces": len(table), "sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()}


def prepare_run_dir(run_dir: Path, cfg: RunConfig, table: pd.DataFrame) -> RunPaths:
    """Create the run directory and write its config, class list and faces digest.

    A directory that already holds a training checkpoint is resumed only with the same classes,
    faces, labels, image size and model config; otherwise a ValueError says what differs and
    nothing is written. Its config.yaml is left for :func:`train_job` to rewrite once the trainer
    accepted the resume (train settings may change on resume, e.g. more epochs)."""
    paths = RunPaths(Path(run_dir))
    classes, digest = classes_of(table), faces_digest(table)
    resuming = paths.checkpoint.exists()
    if resuming:
        import json

        differs = []
        old_classes = json.loads(paths.classes.read_text()) if paths.classes.exists() else list(classes)
        if old_classes != list(classes):
            differs.append(f"classes {old_classes}, not {list(classes)}")
        old_digest = json.loads(paths.faces.read_text()) if paths.faces.exists() else digest
        if old_digest != digest:
            differs.append(f"another dataset or other labels ({old_digest['faces']} faces, now {digest['faces']})")
        if paths.config.exists():
            old_cfg, model = RunConfig.load(paths.config), cfg.model.to_dict()
            if old_cfg.image_size != cfg.image_size:
                differs.append(f"image size {old_cfg.image_size}, not {cfg.image_size}")
            changed = {k: (v, model.get(k)) for k, v in old_cfg.model.to_dict().items() if model.get(k) != v}
            if changed:
                differs.append(f"another model config {changed}")
        if differs:
            raise ValueError(
                f"{paths.root} holds a run trained on {'; '.join(differs)}; use another --out "
                "(or the run's own settings to resume it)"
            )
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json(paths.classes, list(classes))
    write_json(paths.faces, digest)
    if not resuming:
        cfg.save(paths.config)
    return paths


def given_up_classes(prob_given: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float]:
    """{class name: mean of ``prob_given`` (N,) over its faces} for the classes below
    ``GIVEN_UP_BELOW``; ``labels`` (N,) int indexes ``classes``; NaN entries (unseen faces) ignored."""
    out = {}
    for c, name in enumerate(classes):
        values = prob_given[labels == c]
        values = values[~np.isnan(values)]
        mean = float(values.mean()) if len(values) else 1.0
        if mean < GIVEN_UP_BELOW:
            out[name] = mean
    return out


def _warn_given_up(run_dir: Path, labels: np.ndarray, classes: list[str], uncertainty_use: str, log: Log) -> None:
    given_up = given_up_classes(np.asarray(load_dynamics(run_dir)["target_prob_given"][-1]), labels, classes)
    if given_up:
        listed = ", ".join(f"{name} ({p:.3f})" for name, p in given_up.items())
        advice = (
            " With the paper's uncertainty (model.uncertainty_use: logit_scale) this happens when sigma "
            "goes to ~0 for a whole class; the default, probe, keeps sigma out of the classifier."
            if uncertainty_use == "logit_scale"
            else " The class has too few or too mixed faces for this budget: more epochs (--epochs) or "
            "class-balanced sampling (--balanced-sampler) give it more weight."
        )
        log(
            f"warning: the target branch stopped predicting {listed} (mean probability of the given label "
            f"in the last epoch), so nearly every face given these classes scores as likely mislabeled.{advice}"
        )


def warm_start(model: DMUE, source: Path, classes: list[str]) -> str:
    """Initialise ``model`` from an earlier run directory or exported ``model.pt`` (``--init-from``),
    matching ``classes`` with the earlier model's by name or as the same expression under another
    spelling (``curate.expression_names``); returns the line that says what came from where."""
    loaded = load_model(source)
    if loaded.classes is None:
        raise ValueError(f"--init-from {source}: no classes.json beside it, so its classes cannot be matched by name")
    matched = match_classes(classes, loaded.classes)
    as_source = [matched.get(c, c) for c in classes]
    if isinstance(loaded.model, DMUE):
        report = from_dmue(model, loaded.model, as_source, loaded.classes)
    else:
        report = from_plain(model, loaded.model.state_dict(), as_source, loaded.classes)
    spelt = [f"{c} as {s}" for c, s in matched.items() if c != s]
    return report.summary() + (f" (other spellings: {', '.join(spelt)})" if spelt else "")


def _pretrain(dataset: FaceDataset, cfg: RunConfig, out_dir: Path, log: Log, progress: bool) -> None:
    """Run (or reuse) the self-supervised stage on the run's faces, labels unused, into ``out_dir``."""
    m, t = cfg.model, cfg.train
    stage = replace(cfg.pretrain, device=t.device, amp=t.amp)
    try:
        pretrain_stage(
            dataset.images, stage, Backbone(m.backbone, m.small_input, m.official_stem), out_dir,
            log=log, progress=progress,
        )  # fmt: skip
    except PretrainInterrupted as exc:
        raise TrainingInterrupted(str(exc)) from exc


def train_job(
    table: pd.DataFrame, cfg: RunConfig, run_dir: Path, *, log: Log = print, progress: bool = True
) -> RunPaths:
    """Train DMUE on every labelled row of ``table``; export the target model to ``model.pt``.
    Settings left to the data's size (``cfg.size_aware``) are chosen first (``curate.sizing``);
    with ``cfg.pretrain.epochs`` the self-supervised stage runs first into ``RUN_DIR/pretrain/``
    (``curate.pretrain``) and its weights are the start (``model.weights``)."""
    apply_size_defaults(cfg, len(table), log)
    classes = classes_of(table)
    if len(table) == 0:
        raise ValueError("the dataset is empty: nothing to train on")
    if (table["label"] < 0).any():
        raise ValueError(f"{unlabeled_rows(table)}; training needs labels: label them or remove their rows")
    counts = table["label"].value_counts()
    missing = [classes[c] for c in range(len(classes)) if c not in counts.index]
    if missing:
        raise ValueError(f"classes with no training faces: {missing}; drop them with --classes or add faces")
    cfg.model = DMUEConfig.from_dict({**cfg.model.to_dict(), "num_classes": len(classes)})
    if cfg.pretrain.epochs:  # the start is the run's own self-supervised stage, trained below
        cfg.model.weights = str((Path(run_dir) / PRETRAIN_DIR / WEIGHTS).resolve())
    model = DMUE(replace(cfg.model, weights=None) if cfg.pretrain.epochs else cfg.model)
    # an unknown backbone or bad weights fail here, before anything is written
    dataset = FaceDataset(
        table, image_size=cfg.image_size, transform=train_transform(cfg.image_size), preload=True
    )  # so does an unreadable image
    paths = prepare_run_dir(run_dir, cfg, table)
    if cfg.pretrain.epochs:
        _pretrain(dataset, cfg, Path(cfg.model.weights).parent, log, progress)
        model = DMUE(cfg.model)
    if cfg.init_from and not paths.checkpoint.exists():  # a resumed run continues from its own checkpoint
        log(warm_start(model, Path(cfg.init_from), list(classes)) + f" ({cfg.init_from})")
    t0 = time.time()
    result = train(model, dataset, cfg.train, paths.root, resume=True, progress=progress)
    cfg.save(paths.config)  # the trainer accepted these settings
    if not result.completed:
        raise TrainingInterrupted(
            f"training stopped with {result.epochs_done} of {cfg.train.epochs} epochs complete; "
            f"run the same command again to resume from {result.checkpoint}"
        )
    if result.images_per_s == 0:  # nothing left to train this call
        log(
            f"{cfg.model.backbone} DMUE already trained on these {len(table)} faces ({result.epochs_done} epochs): "
            "reusing the model"
        )
    else:
        log(
            f"trained {cfg.model.backbone} DMUE on {len(table)} faces: {result.epochs_done} epochs, "
            f"{time.time() - t0:.0f} s this call, {result.images_per_s:.0f} images/s"
        )
    _warn_given_up(paths.root, table["label"].to_numpy(), classes, cfg.model.uncertainty_use, log)
    save_target_model(model, paths.model)
    return paths


def score_job(
    source: Path,
    table: pd.DataFrame,
    out: Path,
    *,
    cfg: RunConfig | None = None,
    reader: dict[str, Any] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    mining_precision: str | None = None,
    tta: str | None = None,
    progress: bool = True,
    held_out: Sequence[Fold] | None = None,
    reference: pd.DataFrame | None = None,
    log: Log = print,
    group: DistContext | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ScoreResult | None:
    """Score ``table`` with the model in ``source`` (run directory or exported model file).

    ``reader`` (the reader options the table was read with) is stored in the file's metadata so an
    export can re-read the original label file. ``mining_precision`` and ``tta`` override the run's
    ``score.mining_precision`` and ``score.tta``. ``held_out``: the folds of a cross-fitted run
    on this very table, whose models' out-of-fold outputs set how many faces are flagged
    (``train_folds``); by default a cross-fitted run directory's own folds when ``table`` holds
    exactly its training faces.
    ``reference``: rows of the dataset's other splits, checked for exact copies of the scored faces
    (leakage). A table whose labels are bare class ids is read in the model's class order
    (:func:`ids_as_model_classes`, said through ``log``). ``group``: this process's place among
    sharded scoring processes (``curate.scoring.launch``; ``device`` is then the group's): None on
    ranks other than 0. ``on_stage``: called as each scoring stage begins (``score_table``)."""
    loaded = load_model(source)
    if held_out is None:
        held_out = saved_folds(Path(source), table) if Path(source).is_dir() else []
        if held_out:
            one = len(held_out) == 1
            models = "fold model" if one else f"{len(held_out)} fold models"
            judged = sum(len(f.rows) for f in held_out)
            on = (
                "" if judged == len(table) else f" (on the {judged:,} faces {'it' if one else 'they'} did not train on)"
            )
            log(
                f"these are the run's own {len(table):,} training faces: its {models} ({held_out[0].run_dir.parent}) "
                f"estimate{'s' if one else ''} how many to flag{on} beside the full model (the larger count is used), "
                "as when it was trained"
            )
    run_cfg = cfg
    if run_cfg is None and Path(source).is_dir():
        run_cfg = RunConfig.load(RunPaths(Path(source)).config)
    score_cfg = run_cfg.score if run_cfg else ScoreConfig()
    overrides = {k: v for k, v in {"mining_precision": mining_precision, "tta": tta}.items() if v is not None}
    score_cfg = replace(score_cfg, **overrides)
    rule = run_cfg.flag_rule() if run_cfg else None
    table = in_model_order(ids_as_model_classes(table, loaded.classes, loaded.source, log), loaded.classes, log)
    return score_table(
        loaded.model, table, out, image_size=loaded.image_size, score_cfg=score_cfg, rule=rule,
        model_classes=loaded.classes, batch_size=batch_size,
        device=str(group.device if group is not None else resolve_device(device)), group=group, on_stage=on_stage,
        progress=progress, reference=reference, held_out=[(load_model(f.run_dir).model, f.rows) for f in held_out],
        train_batch_size=run_cfg.train.batch_size if run_cfg else 64,
        metadata={"model": str(loaded.source), "dataset": table.attrs.get("source", ""),
                  "dataset_format": table.attrs.get("format", ""),
                  "reader": {k: v for k, v in (reader or {}).items() if v not in (None, (), "")}},
    )  # fmt: skip


def ids_as_model_classes(table: pd.DataFrame, model_classes: list[str] | None, model: Path, log: Log) -> pd.DataFrame:
    """``table`` with its bare class ids (integer labels read without ``--classes``) named by the
    class names recorded with ``model`` (``model_classes``, in order), said in one line through
    ``log``; else unchanged."""
    named = name_class_ids(table, model_classes) if model_classes else None
    if named is None:
        return table
    ids = ", ".join(f"{i} {c}" for i, c in enumerate(model_classes))
    log(f"the labels are class ids without names: read as the classes of {model} ({ids}); "
        "pass --classes to name them otherwise")  # fmt: skip
    return named


def in_model_order(table: pd.DataFrame, model_classes: list[str] | None, log: Log = print) -> pd.DataFrame:
    """``table`` with its labels renumbered into ``model_classes`` when each of its classes is one of
    the model's by name or spelt another way (``curate.expression_names``): e.g. a re-read export
    that lists its classes alphabetically or leaves out empty ones, or RAF-DB's ``happiness`` for a
    FER2013 model's ``happy`` (renamed, said through ``log``); otherwise unchanged (``score_table``
    then explains the mismatch)."""
    classes = classes_of(table)
    if model_classes is None or classes == list(model_classes):
        return table
    to_model = ids_in(classes, model_classes)
    if to_model is None:
        return table
    spelt = {c: model_classes[i] for c, i in zip(classes, to_model, strict=False) if c != model_classes[i]}
    if spelt:
        log(f"the dataset's classes {', '.join(spelt)} are scored as the model's {', '.join(spelt.values())} "
            "(the same expressions spelt another way)")  # fmt: skip
    labels = to_model[table["label"].to_numpy()]  # -1 (unlabeled) stays
    names = pd.Series([*model_classes, ""], dtype=object).iloc[labels].to_numpy()
    out = table.assign(label=labels, label_name=names)
    out = out.rename(columns={VOTE_PREFIX + c: VOTE_PREFIX + m for c, m in spelt.items()})
    out.attrs = {**table.attrs, "classes": list(model_classes)}
    return out


@dataclass
class RunResult:
    paths: RunPaths
    scores: ScoreResult


def train_folds(
    table: pd.DataFrame, cfg: RunConfig, run_dir: Path, *, log: Log = print, progress: bool = True
) -> list[Fold]:
    """Train the fold models of a run (``curate.cross_fit``: the first ``cfg.cross_fit_models`` of
    ``cfg.cross_fit``, 0 = all) into ``RUN_DIR/folds/``, each resumable like any training; [] when
    cross-fitting is off, or when a class has fewer than 2 faces (said in the log)."""
    k = cfg.cross_fit
    if not k:
        return []
    small = too_small_classes(table["label"].to_numpy(), classes_of(table))
    if small:
        log(f"cross-fitting skipped: classes {small} have fewer than 2 faces, so a fold model would never see them")
        return []
    folds = folds_for(run_dir, table, k, cfg.train.seed, cfg.cross_fit_models)
    for i, fold in enumerate(folds):
        log(f"fold {i + 1}/{k}: training on the {len(table) - len(fold.rows):,} faces outside it")
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg.cross_fit = fold_cfg.cross_fit_models = 0
        fold_cfg.pretrain.epochs = 0  # the folds start from the full run's self-supervised weights, if any
        train_job(training_table(table, fold), fold_cfg, fold.run_dir, log=log, progress=progress)
    return folds


def run_job(
    table: pd.DataFrame,
    cfg: RunConfig,
    run_dir: Path,
    *,
    log: Log = print,
    progress: bool = True,
    reference: pd.DataFrame | None = None,
) -> RunResult:
    """The main job: train (and the fold models of a cross-fitted run), score (neighbours, flags,
    data issues) and write ``RUN_DIR/scores.parquet``. ``reference``: the dataset's rows in splits the
    run left out (leakage check)."""
    apply_size_defaults(cfg, len(table), log)
    if cfg.cross_fit:
        log(budget(len(table), cfg.cross_fit, cfg.train.epochs, cfg.cross_fit_models))
    paths = train_job(table, cfg, run_dir, log=log, progress=progress)
    folds = train_folds(table, cfg, paths.root, log=log, progress=progress)
    scores = score_job(
        paths.root, table, paths.scores, cfg=cfg, reader=cfg.data, device=cfg.train.device, progress=progress,
        held_out=folds, reference=reference, log=log,
    )  # fmt: skip
    return RunResult(paths, scores)
