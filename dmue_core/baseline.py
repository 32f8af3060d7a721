"""The plain cross-entropy baseline, with DMUE's trainer interface.

Same registry backbone, same input pipeline, same trainer (sampler, schedule, checkpoints,
dynamics); the loss is the plain cross-entropy of the given label. Used for DMUE-vs-CE comparisons
and for the K-fold out-of-sample probabilities that baselines such as cleanlab need.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .backbones import build_backbone
from .config import DMUEConfig
from .model import StepOutput


class PlainClassifier(nn.Module):
    """trunk -> last stage -> GAP -> linear (C outputs, with bias); ``cfg`` reuses DMUEConfig's
    backbone fields (num_classes, backbone, small_input, weights, official_stem, dropout)."""

    def __init__(self, cfg: DMUEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        parts = build_backbone(
            cfg.backbone,
            cfg.num_classes,
            small_input=cfg.small_input,
            weights=cfg.weights,
            official_stem=cfg.official_stem,
        )
        self.trunk = parts.trunk
        self.stage = parts.make_last_stage()
        self.pool = parts.pool
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(parts.feat_dim, cfg.num_classes)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(embedding [B,D] before dropout, logits [B,C])."""
        emb = self.pool(self.stage(self.trunk(x)))
        return emb, self.head(self.dropout(emb))

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x)[1]

    def training_step(self, x: Tensor, y: Tensor, epoch: float) -> StepOutput:
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        probs = logits.detach().softmax(dim=1)
        return StepOutput(
            loss=loss,
            parts={"ce": loss.detach()},
            target_probs=probs,
            latent=torch.zeros_like(probs),
            uncertainty=torch.ones(len(y), device=x.device),
            notes={},
        )

    def param_groups(self, lr_backbone: float, lr_classifier: float) -> list[dict]:
        return [
            {"name": "backbone", "params": [*self.trunk.parameters(), *self.stage.parameters()], "lr": lr_backbone},
            {"name": "classifier", "params": list(self.head.parameters()), "lr": lr_classifier},
        ]
