"""Start a DMUE model from an earlier model: another DMUE model (every branch) or an exported plain
target model (``export.save_target_model``). Classes are matched by name, so the earlier model may
have other classes or another order.

From a DMUE model: the trunk; the target branch's last stage and BN-neck; the target classifier's
rows of the classes both models have; for each auxiliary branch whose class the earlier model
had, that branch's stage, neck and the rows of its classifier that both models have. An auxiliary
branch of a new class starts from the earlier target stage with a fresh neck and classifier.

From a plain model: the trunk, its last stage for every branch, and the final layer's rows of the
shared classes for the target classifier (its bias has no place in DMUE's bias-free classifier and
is dropped; the target neck restarts as the identity, since export folded it into that layer).

Rows of classes the earlier model did not have keep their fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .backbones import build_backbone
from .model import DMUE


@dataclass
class WarmStartReport:
    """What came from the earlier model: the classes matched by name and the new ones."""

    matched: list[str]
    new: list[str]
    source_kind: str  # "dmue" or "plain"

    def summary(self) -> str:
        new = f"; new classes start fresh: {', '.join(self.new)}" if self.new else ""
        return f"started from a {self.source_kind} model, classes matched by name: {', '.join(self.matched) or 'none'}{new}"


def _check_fit(target: nn.Module, source_state: dict[str, Tensor], what: str) -> None:
    own = target.state_dict()
    bad = sorted(k for k in own if k not in source_state or source_state[k].shape != own[k].shape)
    if bad:
        raise ValueError(
            f"the earlier model's {what} does not fit this model's ({len(bad)} tensors differ, "
            f"first {bad[0]}): use the earlier run's backbone and input stem"
        )


def _copy_rows(head: nn.Linear, names: Sequence[str], source: Tensor, source_names: Sequence[str]) -> None:
    """Copy into ``head``'s rows (one per name in ``names``) the rows of ``source`` whose names match."""
    with torch.no_grad():
        for row, name in enumerate(names):
            if name in source_names:
                head.weight[row] = source[list(source_names).index(name)]


def _others(classes: Sequence[str], c: int) -> list[str]:
    return [n for i, n in enumerate(classes) if i != c]


def _report(classes: Sequence[str], source_classes: Sequence[str], kind: str) -> WarmStartReport:
    return WarmStartReport(
        [n for n in classes if n in source_classes], [n for n in classes if n not in source_classes], kind
    )


def _load(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    _check_fit(module, state, what)
    module.load_state_dict(state)


def from_dmue(model: DMUE, source: DMUE, classes: Sequence[str], source_classes: Sequence[str]) -> WarmStartReport:
    """Initialise ``model`` (classes ``classes``) from the DMUE model ``source`` (``source_classes``)."""
    if len(classes) != model.num_classes or len(source_classes) != source.num_classes:
        raise ValueError("class names and models disagree on the number of classes")
    _load(model.trunk, source.trunk.state_dict(), "trunk")
    _load(model.target_stage, source.target_stage.state_dict(), "last stage")
    model.target_neck.load_state_dict(source.target_neck.state_dict())
    _copy_rows(model.target_head, classes, source.target_head.weight, source_classes)
    for c, name in enumerate(classes):
        if name in source_classes:
            s = list(source_classes).index(name)
            model.aux_stages[c].load_state_dict(source.aux_stages[s].state_dict())
            if not model.cfg.official_shared_neck and not source.cfg.official_shared_neck:
                model.necks[c].load_state_dict(source.necks[s].state_dict())
            _copy_rows(model.aux_heads[c], _others(classes, c), source.aux_heads[s].weight, _others(source_classes, s))
        else:
            model.aux_stages[c].load_state_dict(source.target_stage.state_dict())
    return _report(classes, source_classes, "dmue")


def from_plain(
    model: DMUE, plain_state: dict[str, Tensor], classes: Sequence[str], source_classes: Sequence[str]
) -> WarmStartReport:
    """Initialise ``model`` from the state dict of an exported plain target model."""
    cfg = model.cfg
    parts = build_backbone(cfg.backbone, cfg.num_classes, small_input=cfg.small_input, official_stem=cfg.official_stem)
    try:
        trunk, last_stage, head_weight = parts.split_plain_state(plain_state)
    except KeyError as err:
        raise ValueError(
            f"the earlier model's layers do not fit this model's (no {err}): use the earlier "
            "run's backbone and input stem"
        ) from err
    if head_weight.shape != (len(source_classes), model.feat_dim):
        raise ValueError(
            f"the earlier model's classifier is {tuple(head_weight.shape)}, not "
            f"({len(source_classes)}, {model.feat_dim}) for its {len(source_classes)} classes"
        )
    _load(model.trunk, trunk, "trunk")
    for stage in (model.target_stage, *model.aux_stages):
        _load(stage, last_stage, "last stage")
    neck = model.target_neck
    with torch.no_grad():
        neck.running_mean.zero_()
        neck.running_var.fill_(1.0)
        neck.weight.fill_(1.0)
    _copy_rows(model.target_head, classes, head_weight, source_classes)
    return _report(classes, source_classes, "plain")
