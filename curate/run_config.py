"""The resolved configuration of a run, saved as ``RUN_DIR/config.yaml`` and readable by ``--config``.

Sections: ``data`` (the dataset path and reader options), ``image_size``, ``init_from`` (the earlier
run or exported model the weights started from, or null), ``cross_fit`` (K fold models estimate
the share of faces to flag out of sample, ``curate.cross_fit``; 0 = off), ``cross_fit_models``
(how many of the K fold models train, 0 = all: fewer judge only the faces of their folds, a held-out
sample the share is estimated on), ``size_aware`` (the settings still to
be chosen from the number of faces, ``curate.sizing``; empty once a run chose them), ``pretrain``
(the self-supervised stage run first, ``dmue_core.selfsup.SelfSupConfig``; ``epochs: 0`` = off), ``model``
(``dmue_core.config.DMUEConfig``), ``train`` (``dmue_core.config.TrainConfig``), ``score``
(``curate.scoring.scores.ScoreConfig``) and ``flags`` (``curate.flags.FlagRule`` thresholds).
Command-line flags override the file; the file overrides the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from curate.files import temp_beside
from curate.flags import FlagRule
from curate.scoring.scores import ScoreConfig
from curate.sizing import SIZE_AWARE
from dmue_core.config import DMUEConfig, TrainConfig
from dmue_core.selfsup import SelfSupConfig

#: curate's defaults for training from scratch on CPU (dmue_core's own defaults follow the paper,
#: whose learning rates assume an MS-Celeb-pretrained backbone; from random init they barely move).
#: Sampling: every face once per epoch (the paper: class-balanced draws with replacement, which on
#: FER2013 reach 58 % of the faces per epoch; measured on FERPlus in docs/method.md).
MODEL_DEFAULTS: dict[str, Any] = {"num_classes": 7, "backbone": "fer_cnn", "small_input": True, "ramp_a": 4.0}
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 12,
    "batch_size": 64,
    "schedule": "cosine",
    "lr_backbone": 2e-3,
    "lr_classifier": 2e-3,
    "num_workers": 1,
    "balanced_sampler": False,
}

FLAG_KEYS = ("mislabel_threshold", "quota", "ambiguity_threshold", "top2_ratio", "knn_threshold")


def _dataclass_from(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"config section '{section}': unknown keys {unknown} (known: {sorted(known)})")
    return cls(**values)


def check_fold_count(k: int) -> None:
    """ValueError unless ``k`` is 0 (cross-fitting off) or a number of folds >= 2."""
    if k < 0 or k == 1:
        raise ValueError(f"cross-fitting needs at least 2 folds (0: off), not {k}")


def check_fold_models(k: int, models: int) -> None:
    """ValueError unless ``models`` (fold models to train; 0 = all) fits ``k`` folds."""
    if models < 0:
        raise ValueError(f"the number of fold models cannot be negative, not {models}")
    if models and not k:
        raise ValueError(
            f"{models} fold models asked for without cross-fitting: set the number of folds (--cross-fit K)"
        )
    if models > k:
        raise ValueError(f"{models} fold models asked for, but there are only {k} folds")


@dataclass
class RunConfig:
    """Everything needed to reproduce a run."""

    data: dict[str, Any] = field(default_factory=dict)
    image_size: int = 48
    init_from: str | None = None
    cross_fit: int = 0
    cross_fit_models: int = 0
    size_aware: list[str] = field(default_factory=lambda: list(SIZE_AWARE))
    pretrain: SelfSupConfig = field(default_factory=SelfSupConfig)
    model: DMUEConfig = field(default_factory=lambda: DMUEConfig(**MODEL_DEFAULTS))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**TRAIN_DEFAULTS))
    score: ScoreConfig = field(default_factory=ScoreConfig)
    flags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError for settings that cannot go together."""
        check_fold_count(self.cross_fit)
        if "cross_fit" not in self.size_aware:  # else the size table chooses both
            check_fold_models(self.cross_fit, self.cross_fit_models)
        unknown = sorted(set(self.size_aware) - set(SIZE_AWARE))
        if unknown:
            raise ValueError(f"size_aware: unknown settings {unknown} (known: {list(SIZE_AWARE)})")
        if self.pretrain.epochs and self.init_from:
            raise ValueError(
                "a self-supervised start (pretrain epochs) and init_from (--init-from) are two starts: choose one"
            )

    def set_explicitly(self, *settings: str) -> None:
        """Take ``settings`` (``SIZE_AWARE`` names) off the size-aware list: the user chose them."""
        self.size_aware = [s for s in self.size_aware if s not in settings]

    def flag_rule(self) -> FlagRule:
        return _dataclass_from(FlagRule, self.flags, "flags")

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": dict(self.data),
            "image_size": self.image_size,
            "init_from": self.init_from,
            "cross_fit": self.cross_fit,
            "cross_fit_models": self.cross_fit_models,
            "size_aware": list(self.size_aware),
            "pretrain": self.pretrain.to_dict(),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "score": self.score.to_dict(),
            "flags": dict(self.flags),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        unknown = sorted(
            set(d)
            - {
                "data",
                "image_size",
                "init_from",
                "cross_fit",
                "cross_fit_models",
                "size_aware",
                "pretrain",
                "model",
                "train",
                "score",
                "flags",
            }
        )
        if unknown:
            raise ValueError(f"config: unknown sections {unknown}")
        flags = dict(d.get("flags") or {})
        bad = sorted(set(flags) - set(FLAG_KEYS))
        if bad:
            raise ValueError(f"config section 'flags': unknown keys {bad} (known: {list(FLAG_KEYS)})")
        return cls(
            data=dict(d.get("data") or {}),
            image_size=int(d.get("image_size", 48)),
            init_from=d.get("init_from"),
            cross_fit=int(d.get("cross_fit") or 0),
            cross_fit_models=int(d.get("cross_fit_models") or 0),
            size_aware=list(d.get("size_aware", SIZE_AWARE)),
            pretrain=SelfSupConfig.from_dict(d.get("pretrain") or {}),
            model=DMUEConfig.from_dict({**MODEL_DEFAULTS, **(d.get("model") or {})}),
            train=TrainConfig.from_dict({**TRAIN_DEFAULTS, **(d.get("train") or {})}),
            score=_dataclass_from(ScoreConfig, d.get("score") or {}, "score"),
            flags=flags,
        )

    def save(self, path: str | Path) -> Path:
        """Write YAML atomically."""
        path = Path(path)
        tmp = temp_beside(path)
        with open(tmp, "w") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            d = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config {path}: {exc}") from exc
        return cls.from_dict({"size_aware": [], **d})  # a file written before size_aware: every value explicit


def override(cfg: RunConfig, section: str, **values: Any) -> None:
    """Set the given non-None values on a config section (``model``, ``train``, ``score``) in place."""
    target = getattr(cfg, section)
    for key, value in values.items():
        if value is not None:
            if not hasattr(target, key):
                raise ValueError(f"{section} has no setting '{key}'")
            setattr(target, key, value)


class ConfigError(ValueError):
    """A config file or setting that cannot be used; the message says which and why."""


def resolve_config(
    data: dict[str, Any],
    *,
    config_file: Path | None,
    backbone: str | None,
    weights: str | None,
    init_from: Path | None,
    epochs: int | None,
    batch_size: int | None,
    image_size: int | None,
    small_input: bool | None,
    ramp_a: float | None,
    aux_fraction: float | None,
    balanced_sampler: bool | None,
    faithful: bool,
    device: str | None,
    amp: str | None,
    num_workers: int | None,
    seed: int | None,
    deterministic: bool | None,
    keep_snapshots: int | None = None,
    defaults: dict[str, Any] | None = None,
    pretrain_epochs: int | None = None,
) -> RunConfig:
    """Defaults < ``defaults`` < config file < the given settings (None = not given), as one
    RunConfig; ``data`` (the dataset and its reader options) joins the ``data`` section.
    ``faithful`` switches on the official DMUE code's quirks; ``amp`` is auto, on or off.
    ``pretrain_epochs`` > 0 runs the self-supervised stage first (its weights become the start,
    so it cannot be combined with ``weights``; 0 turns a config's stage off).
    ConfigError when the file or a setting is invalid."""
    try:
        cfg = RunConfig.load(config_file) if config_file else RunConfig.from_dict(defaults or {})
        if faithful:
            m = cfg.model
            cfg.model = DMUEConfig.faithful(
                m.num_classes, backbone=m.backbone, small_input=m.small_input, ramp_a=m.ramp_a, weights=m.weights
            )
            cfg.train.balanced_sampler = True  # the official code's class-balanced sampler
        cfg.data = {**cfg.data, **{k: v for k, v in data.items() if v not in (None, (), "")}}
        if image_size is not None:
            cfg.image_size = image_size
        if init_from is not None:
            cfg.init_from = str(init_from.resolve())
        if pretrain_epochs is not None:
            if pretrain_epochs and weights is not None:
                raise ValueError("--pretrain-epochs trains the start itself: drop --weights, or drop --pretrain-epochs")
            if cfg.pretrain.epochs and not pretrain_epochs:
                cfg.model.weights = None  # the config's start was its own stage's output
            cfg.pretrain = SelfSupConfig.from_dict({**cfg.pretrain.to_dict(), "epochs": pretrain_epochs})
        override(
            cfg,
            "model",
            backbone=backbone,
            weights=weights,
            small_input=small_input,
            ramp_a=ramp_a,
            aux_fraction=aux_fraction,
        )
        amp_setting = {"on": True, "off": False}.get(amp, amp)
        override(
            cfg,
            "train",
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            amp=amp_setting,
            num_workers=num_workers,
            seed=seed,
            deterministic=deterministic,
            balanced_sampler=balanced_sampler,
            keep_snapshots=keep_snapshots,
        )
        cfg.validate()  # the combination of the file and the flags
        given = (("train.epochs", epochs), ("model.ramp_a", ramp_a), ("pretrain.epochs", pretrain_epochs is not None))
        cfg.set_explicitly(*(name for name, value in given if value))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg
