"""The benchmark protocol: every stage on the same faces, backbone and budget, in one run.

Stages (cached in ``out/``; see ``StageStore``): ``dmue`` and ``dmue_faithful`` (``curate run``
in a child process, timed, peak memory), ``ce_full`` (plain CE on all faces: in-sample loss, kNN
label disagreement on its embeddings), ``kfold`` (K-fold CE out-of-fold logits), ``cleanlab``,
``mistakenness`` (FiftyOne Brain), ``flip-<rate>`` (synthetic-flip accuracy protocol), ``speed``.

Order: ``dmue``, ``kfold``, ``cleanlab``, ``mistakenness`` and ``speed`` run alone on every core, so
their times are the ones a user gets. Then, with ``overlap``, ``dmue_faithful`` runs in a child process
on half the cores beside ``ce_full`` and the flips (the other half here, until the child ends): on 2
cores, two one-thread trainings get ~1.3x the images/s of one two-thread training. ``ce_full`` and
``dmue_faithful`` then carry ``shared_cpu: true`` and the report marks their times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from curate import records
from curate.benchmark import detectors, models
from curate.benchmark.signals import run_signals
from curate.benchmark.splits import flip_labels, make_splits, stratified_sample
from curate.benchmark.stages import Computed, StageStore
from curate.data.table import FER2013_CLASSES
from curate.scoring.scores import ScoreConfig, normalised_entropy, softmax

Log = Callable[[str], Any]
READER = {"path_column": "path", "label_column": "label", "classes": ",".join(FER2013_CLASSES)}
PRESETS: dict[str, dict[str, Any]] = {
    # 2,000 faces, 500 held out for accuracy: minutes, for re-checking figures often.
    "quick": {"epochs": 10, "folds": 3, "flip_train": None, "flip_rates": (0.3,)},
    # the whole Training split (28,558 faces); the flip protocol on a stratified 4,000-face subset.
    "full": {"epochs": 14, "folds": 3, "flip_train": 4000, "flip_rates": (0.1, 0.2, 0.3)},
}


@dataclass
class BenchConfig:
    """``labels_csv``: a FERPlus labels.csv; ``out``: the stage folder. ``max_train`` subsamples
    the training faces (stratified); ``flip_train`` the faces of the flip protocol. ``tta``: the
    test-time augmentation of every model's predictions, DMUE's and the baselines' alike
    (``curate score``'s default). ``overlap``: the faithful run beside ``ce_full`` and the flips
    (module docstring)."""

    labels_csv: Path
    out: Path
    epochs: int = 14
    backbone: str = "fer_cnn"
    folds: int = 3
    max_train: int | None = None
    flip_train: int | None = 4000
    flip_rates: tuple[float, ...] = (0.1, 0.2, 0.3)
    eval_fraction: float = 0.25
    k: int = 10
    seed: int = 0
    tta: str = ScoreConfig.tta
    faithful: bool = True
    overlap: bool = True
    progress: bool = True

    @classmethod
    def preset(cls, mode: str, labels_csv: Path, out: Path, **overrides: Any) -> BenchConfig:
        return cls(labels_csv=Path(labels_csv), out=Path(out), **{**PRESETS[mode], **overrides})


def train_init_source(source_csv: Path, epochs: int, backbone: str, seed: int, log: Log) -> Path:
    """The ``--init-from`` source of a suite: ``curate train`` on ``source_csv`` into
    ``<its folder>/run``, once (a finished model is reused; an interrupted one resumes)."""
    run_dir = source_csv.parent / "run"
    if not (run_dir / "model.pt").exists():
        args = ["train", str(source_csv), *(f"--{k.replace('_', '-')}={v}" for k, v in READER.items()),
                f"--epochs={epochs}", f"--ramp-a={epochs / 3:g}", f"--backbone={backbone}",
                f"--seed={seed}", f"--out={run_dir}"]  # fmt: skip
        log("[source] curate " + " ".join(args))
        subprocess.run([sys.executable, "-c", "from curate.cli import main; main()", *args], check=True)
    return run_dir


def _read(csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(LabelTable, truth columns aligned to it) of a split CSV written by ``make_splits``."""
    from curate.data.load import load_table

    table = load_table(str(csv), **READER)
    truth = pd.read_csv(csv).set_index("path").loc[table["sample_id"]].reset_index()
    return table, truth


def _subset(table: pd.DataFrame, rows: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    sub = table.iloc[rows].reset_index(drop=True)
    if labels is not None:
        sub["label"] = labels
    sub.attrs = table.attrs
    return sub


@dataclass
class _Child:
    """A ``curate run`` stage in a child process; ``log`` holds its output when it runs beside others."""

    name: str
    proc: subprocess.Popen
    log: Path | None = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the child if it still runs (its checkpoint lets a re-run resume) and reap it."""
        if self.running():
            self.proc.terminate()
        self.proc.wait()


class Benchmark:
    def __init__(self, cfg: BenchConfig, log: Log = print) -> None:
        self.cfg = cfg
        self.log = log
        self.beside: _Child | None = None  # a child process sharing the CPU with this one
        self.store = StageStore(cfg.out, log)
        self.train_csv, self.eval_csv = cfg.out / "train.csv", cfg.out / "eval.csv"
        if not self.train_csv.exists():
            make_splits(
                cfg.labels_csv, cfg.out, max_train=cfg.max_train, eval_fraction=cfg.eval_fraction, seed=cfg.seed
            )
        self.train, self.truth = _read(self.train_csv)
        self.eval, self.eval_truth = _read(self.eval_csv)
        self.given = self.train["label"].to_numpy()
        self.cores = torch.get_num_threads()

    # --- training and predicting with the run's backbone, budget and TTA ------------------------
    def _fit(self, kind: str, table: pd.DataFrame, out_dir: Path, *, seed_offset: int = 0):
        """``models.fit`` with the benchmark's epochs, backbone and seed (+ ``seed_offset``)."""
        self._share_cores()
        return models.fit(
            kind,
            table,
            out_dir,
            epochs=self.cfg.epochs,
            seed=self.cfg.seed + seed_offset,
            backbone=self.cfg.backbone,
            progress=self.cfg.progress,
        )

    def _sharing(self) -> bool:
        """Whether a child process runs beside this one now."""
        return self.beside is not None and self.beside.running()

    def _share_cores(self) -> None:
        """Leave the child beside this process its half of the cores while it runs; all of them after."""
        torch.set_num_threads(self.cores - self.cores // 2 if self._sharing() else self.cores)

    def _predict(self, model, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``models.predict`` with the benchmark's test-time augmentation."""
        self._share_cores()
        return models.predict(model, table, tta=self.cfg.tta)

    def _accuracy(self, model) -> float:
        """Accuracy of ``model`` on the evaluation faces against the FERPlus majority (rows with one)."""
        crowd = self.eval_truth["ferplus_label"].to_numpy()
        known = crowd >= 0
        logits, _ = self._predict(model, _subset(self.eval, np.flatnonzero(known)))
        return float(np.mean(logits.argmax(1) == crowd[known]))

    # --- DMUE through the CLI's main job -------------------------------------------------------
    def curate_run(self, name: str, *flags: str) -> Computed:
        """``curate run`` on the training faces in a child process, in the foreground."""
        return self.finish_run(self.start_run(name, *flags))

    def start_run(self, name: str, *flags: str, threads: int | None = None) -> _Child:
        """Start ``curate run`` for stage ``name``; with ``threads``, on that many CPU threads and
        writing its output to ``<stage>/run.log`` instead of this terminal."""
        run_dir = self.store.dir(name) / "run"
        usage = self.store.dir(name) / "usage.json"
        e = self.cfg.epochs
        args = [
            "run",
            str(self.train_csv),
            *(f"--{k.replace('_', '-')}={v}" for k, v in READER.items()),
            f"--epochs={e}",
            f"--backbone={self.cfg.backbone}",
            f"--ramp-a={e / 3:g}",
            f"--seed={self.cfg.seed}",
            f"--tta={self.cfg.tta}",
            "--no-load",
            f"--out={run_dir}",
            *([] if any(f.startswith("--cross-fit") for f in flags) else ["--cross-fit=0"]),  # same budget
            *([] if any(f.startswith("--pretrain-epochs") for f in flags) else ["--pretrain-epochs=0"]),  # and start
            *flags,
        ]
        self.log("[bench] curate " + " ".join(args))
        cmd = [sys.executable, "-m", "curate.cli.measured", str(usage), *args]
        if threads is None:
            return _Child(name, subprocess.Popen(cmd))
        log = self.store.dir(name) / "run.log"
        self.log(f"[bench] {name}: running beside the next stages on {threads} thread(s); output in {log}")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        with open(log, "w") as fh:
            return _Child(name, subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT), log)

    def finish_run(self, child: _Child) -> Computed:
        """Wait for ``child``; its wall time, peak memory, throughput and accuracy, and its signals."""
        try:
            child.proc.wait()
        except BaseException:  # Ctrl-C here: the child stops too
            child.stop()
            raise
        if child.proc.returncode != 0:
            where = f"; its output is in {child.log}" if child.log else ""
            raise RuntimeError(f"stage {child.name}: curate run failed with exit code {child.proc.returncode}{where}")
        run_dir = self.store.dir(child.name) / "run"
        scalars = json.loads((self.store.dir(child.name) / "usage.json").read_text())
        from curate.runs import load_model

        scalars |= {
            "train_images_per_s": models.train_images_per_s(run_dir),
            "eval_accuracy": self._accuracy(load_model(run_dir).model),
            "shared_cpu": child.log is not None,
        }
        return scalars, run_signals(run_dir, self.train["sample_id"])

    # --- the plain cross-entropy baselines ------------------------------------------------------
    def ce_full(self) -> Computed:
        folder = self.store.dir("ce_full")
        shared = self._sharing()
        t0 = time.perf_counter()
        model = self._fit("ce", self.train, folder / "train")
        t1 = time.perf_counter()
        logits, emb = self._predict(model, self.train)
        t2 = time.perf_counter()
        knn = detectors.knn_label_disagreement(emb, self.given, self.cfg.k)
        t3 = time.perf_counter()
        probs = softmax(logits)
        return ({"train_s": t1 - t0, "predict_s": t2 - t1, "knn_s": t3 - t2,
                 "eval_accuracy": self._accuracy(model), "shared_cpu": shared},
                {"loss": -np.log(np.clip(probs[np.arange(len(probs)), self.given], 1e-12, None)),
                 "knn_disagreement": knn, "entropy": normalised_entropy(probs)})  # fmt: skip

    def kfold(self) -> Computed:
        folds = models.stratified_folds(self.given, self.cfg.folds, self.cfg.seed)
        oof = np.zeros((len(self.train), len(FER2013_CLASSES)), dtype=np.float32)
        t0 = time.perf_counter()
        for f in range(self.cfg.folds):
            train = _subset(self.train, np.flatnonzero(folds != f))
            model = self._fit("ce", train, self.store.dir("kfold") / f"fold{f}", seed_offset=f)
            held = np.flatnonzero(folds == f)
            oof[held] = self._predict(model, _subset(self.train, held))[0]
        seconds = time.perf_counter() - t0
        speed = np.mean(
            [models.train_images_per_s(self.store.dir("kfold") / f"fold{f}") for f in range(self.cfg.folds)]
        )
        return {"seconds": seconds, "train_images_per_s": float(speed)}, {"oof_logits": oof, "folds": folds}

    def cleanlab(self, oof_logits: np.ndarray) -> Computed:
        t0 = time.perf_counter()
        out = detectors.cleanlab_detect(self.given, softmax(oof_logits))
        return {"seconds": time.perf_counter() - t0}, out

    def mistakenness(self, oof_logits: np.ndarray) -> Computed:
        t0 = time.perf_counter()
        score = detectors.fiftyone_mistakenness(
            self.train["filepath"].tolist(), self.given, oof_logits, list(FER2013_CLASSES)
        )
        return {"seconds": time.perf_counter() - t0}, {"mistakenness": score}

    # --- accuracy under synthetic flips ----------------------------------------------------------
    def flips(self, rate: float) -> Computed:
        crowd = self.truth["ferplus_label"].to_numpy()
        known = np.flatnonzero(crowd >= 0)
        rng = np.random.default_rng(self.cfg.seed)
        rows = known[stratified_sample(crowd[known], self.cfg.flip_train or len(known), rng)]
        noisy = flip_labels(crowd[rows], rate, len(FER2013_CLASSES), rng)
        table = _subset(self.train, rows, noisy)
        folder = self.store.dir(f"flip-{rate:g}")
        acc = {}
        for kind in ("dmue", "ce"):
            model = self._fit(kind, table, folder / kind)
            acc[f"{kind}_accuracy"] = self._accuracy(model)
        return {"rate": rate, "faces": len(rows), "actual_noise": float(np.mean(noisy != crowd[rows])), **acc}, {}

    # --- speed and cost ratios on the real data -------------------------------------------------
    def speed(self) -> Computed:
        from sklearn.neighbors import NearestNeighbors

        from curate.jobs import score_job
        from curate.neighbors import knn, recall_at_k
        from curate.run_config import RunConfig
        from curate.runs import RunPaths, load_model
        from dmue_core.precision import native_bf16

        run_dir = self.store.root / "dmue" / "run"
        sub = _subset(self.train, np.arange(min(4096, len(self.train))))
        plain = load_model(run_dir / "model.pt").model.eval()
        run_cfg = RunConfig.load(RunPaths(run_dir).config)
        routed = replace(run_cfg, score=replace(run_cfg.score, w_aux=0.0))  # one auxiliary branch per face
        seconds: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            runs = {f"score_{p}_s": lambda p=p: score_job(run_dir, sub, Path(tmp) / f"{p}.parquet", cfg=routed,
                                                         mining_precision=p, tta="none", progress=False)
                    for p in ("fp32", "bf16")}  # fmt: skip
            runs["score_consensus_s"] = lambda: score_job(
                run_dir, sub, Path(tmp) / "consensus.parquet", tta="none", progress=False
            )  # all C auxiliary branches
            runs["score_hflip_s"] = lambda: score_job(
                run_dir, sub, Path(tmp) / "hflip.parquet", tta="hflip", progress=False
            )  # the defaults: both views, consensus
            runs["plain_inference_s"] = lambda: _plain_inference(plain, sub)
            for _ in range(3):  # round-robin, best of three: load changes hit every variant alike
                for name, fn in runs.items():
                    t = time.perf_counter()
                    fn()
                    seconds[name] = min(seconds.get(name, np.inf), time.perf_counter() - t)
            a, b = (records.read_scores(Path(tmp) / f"{p}.parquet") for p in ("fp32", "bf16"))
            drift = {f"bf16_max_abs_diff_{col}": float(np.abs(a[col] - b[col]).max())
                     for col in ("mislabel_score", "ambiguity_score")}  # fmt: skip
            drift["bf16_suggested_label_changed"] = float((a["suggested_label"] != b["suggested_label"]).mean())
        emb = records.load_embeddings(run_dir / "scores.parquet").astype(np.float32)
        k = self.cfg.k
        t3 = time.perf_counter()
        exact = knn(emb, k, index="flat")
        t4 = time.perf_counter()
        NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(emb).kneighbors(emb)
        t5 = time.perf_counter()
        approx = knn(emb, k, index="ivf")
        t6 = time.perf_counter()
        return ({"faces": len(sub), **seconds, **drift, "native_bf16": native_bf16("cpu"),
                 "knn_n": len(emb), "knn_dim": emb.shape[1], "faiss_exact_s": t4 - t3, "sklearn_s": t5 - t4,
                 "faiss_ivf_s": t6 - t5, "ivf_recall": recall_at_k(approx.indices, exact.indices),
                 "fiftyone_load_s": _fiftyone_load_seconds(run_dir / "scores.parquet")}, {})  # fmt: skip

    def _collect_beside(self, got: dict[str, Computed]) -> None:
        """Save the child's stage as soon as it has ended (an interruption later cannot lose it)."""
        child = self.beside
        if child is not None and not child.running():
            got[child.name] = self.store.get(child.name, lambda: self.finish_run(child))
            self.beside = None

    def _kfold_detectors(self, got: dict[str, Computed]) -> None:
        """The K-fold CE models and the detectors built on their out-of-fold predictions."""
        got["kfold"] = self.store.get("kfold", self.kfold)
        oof = got["kfold"][1]["oof_logits"]
        got["cleanlab"] = self.store.get("cleanlab", lambda: self.cleanlab(oof))
        got["mistakenness"] = self.store.get("mistakenness", lambda: self.mistakenness(oof))

    def _stop_beside(self) -> None:
        """Stop the child beside this process, if one still runs (a re-run resumes it), and take
        back every core."""
        if self.beside is not None:
            self.beside.stop()
        self.beside = None
        torch.set_num_threads(self.cores)

    def _record(self, got: dict[str, Computed]) -> dict[str, Any]:
        return {
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.cfg).items()},
            "faces": len(self.train),
            "eval_faces": len(self.eval),
            "stages": got,
            "truth": self.truth,
        }

    def detection(self) -> dict[str, Any]:
        """Only the detectors (``dmue``, ``kfold``, ``cleanlab``, ``mistakenness``, ``ce_full``), for
        suites that repeat them over many label sets; with ``overlap``, DMUE trains in a child
        process on half the cores beside the CE models (its and ``ce_full``'s times are marked)."""
        got: dict[str, Computed] = {}
        if self.cfg.overlap and self.cores >= 2 and not self.store.done("dmue"):
            self.beside = self.start_run("dmue", threads=self.cores // 2)
        try:
            self._kfold_detectors(got)
            got["ce_full"] = self.store.get("ce_full", self.ce_full)
            got["dmue"] = self.store.get("dmue", lambda: self.finish_run(self.beside or self.start_run("dmue")))
        finally:
            self._stop_beside()
        return self._record(got)

    def run(self) -> dict[str, Any]:
        """Every stage (cached ones are read back); returns the stage figures and arrays by name."""
        got: dict[str, Computed] = {}
        got["dmue"] = self.store.get("dmue", lambda: self.curate_run("dmue"))
        self._kfold_detectors(got)
        got["speed"] = self.store.get("speed", self.speed)
        beside = ["ce_full", *(f"flip-{rate:g}" for rate in self.cfg.flip_rates)]
        faithful = self.cfg.faithful and not self.store.done("dmue_faithful")
        if faithful and self.cfg.overlap and self.cores >= 2 and not all(map(self.store.done, beside)):
            self.beside = self.start_run("dmue_faithful", "--faithful", threads=self.cores // 2)
        try:
            got["ce_full"] = self.store.get("ce_full", self.ce_full)
            self._collect_beside(got)
            for rate in self.cfg.flip_rates:
                got[f"flip-{rate:g}"] = self.store.get(f"flip-{rate:g}", lambda r=rate: self.flips(r))
                self._collect_beside(got)
            if self.cfg.faithful and "dmue_faithful" not in got:
                got["dmue_faithful"] = self.store.get(
                    "dmue_faithful",
                    lambda: self.finish_run(self.beside or self.start_run("dmue_faithful", "--faithful")),
                )
        finally:
            self._stop_beside()
        return self._record(got)


def _plain_inference(model, table: pd.DataFrame) -> None:
    """The exported target model over ``table`` through the scorer's own loader and format."""
    from curate.data.torch_dataset import FaceDataset, eval_transform
    from curate.scoring.infer import iterate_outputs

    data = FaceDataset(table, models.IMAGE_SIZE, transform=eval_transform(models.IMAGE_SIZE))
    for _ in iterate_outputs(model, data, batch_size=256, progress=False):
        pass


def _fiftyone_load_seconds(scores: Path) -> float:
    """Seconds for ``curate load`` (bulk insert, no similarity index) into a throwaway dataset."""
    import uuid

    from curate.fiftyone.load import load_scores

    name = f"curate-bench-load-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    dataset = load_scores(scores, name, similarity=False, progress=False)
    seconds = time.perf_counter() - t0
    dataset.delete()
    return seconds


def run_benchmark(cfg: BenchConfig, log: Log = print, *, plots_dir: Path | None = None) -> dict[str, Any]:
    """Run (or resume) the benchmark; write ``results.md``, ``results.json`` and the PNG plots
    (into ``plots_dir``, default ``cfg.out``); returns the JSON record."""
    from curate.benchmark.report import write_report

    return write_report(Benchmark(cfg, log).run(), cfg.out, plots_dir=plots_dir)
