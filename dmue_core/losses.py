"""DMUE's loss terms and the inputs of its pairwise uncertainty estimate, as pure functions.

Shapes: B samples, C classes, D embedding dims. ``y`` is a LongTensor[B] of labels in [0, C).
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def aux_labels(y: Tensor, c: int) -> Tensor:
    """Labels (all != c) in auxiliary branch c's (C-1)-way space: y if y < c else y - 1."""
    return y - (y > c).long()


def latent_from_aux_logits(aux_logits: Tensor, y: Tensor, temperature: float) -> Tensor:
    """Latent distribution [B,C] from the (C-1) logits of auxiliary branch y_i for each sample.

    q = softmax(logits), q^(1/T) renormalised (== softmax(logits / T)), embedded into C dims with
    0 at the labelled class and the C-1 entries in order at the other classes. Rows sum to 1.
    """
    q = torch.softmax(aux_logits.float() / temperature, dim=1)
    n, k = q.shape
    slots = torch.arange(k, device=y.device).expand(n, k)
    cols = slots + (slots >= y[:, None]).long()
    return q.new_zeros(n, k + 1).scatter_(1, cols, q)


def aux_consensus(aux_probs: Tensor, y: Tensor) -> Tensor:
    """[B,C] the view of the C-1 auxiliary branches that trained on each sample's given label y_i:
    per class, the mean probability over those of them that can predict it (all C-1 for y_i; C-2
    for any other class, since branch c never predicts c), renormalised. A plain mean over the C-1
    would cap every class but y_i at (C-2)/(C-1) of it: 1/2 with three classes. aux_probs [B,C,C]
    as ``DMUE.aux_probs`` (row c has 0 at class c). Rows sum to 1; entry y_i is their (in-sample)
    belief in the given label."""
    probs = aux_probs.float()
    rows = torch.arange(len(y), device=y.device)
    summed = probs.sum(dim=1) - probs[rows, y]  # branch y_i, the one that never saw y_i, left out
    c = probs.shape[1]
    branches = torch.full_like(summed, c - 2.0)
    branches[rows, y] = c - 1.0
    mean = summed / branches
    return mean / mean.sum(dim=1, keepdim=True)


def soft_loss(target_logits: Tensor, latent: Tensor, y: Tensor) -> Tensor:
    """L_soft: MSE over all B*C entries between softmax(target_logits) with the labelled entry set
    to 0 (not renormalised) and the latent distribution [B,C]. Scalar in [0, 1]."""
    p = torch.softmax(target_logits.float(), dim=1)
    p = p.scatter(1, y[:, None], 0.0)
    return F.mse_loss(p, latent)


def similarity_matrix(features: Tensor) -> Tensor:
    """Row-L2-normalised Gram matrix [n,n] of features [n,d] (similarity-preserving KD)."""
    f = features.float()
    return F.normalize(f @ f.T, dim=1)


def sp_loss(aux_features: Tensor, target_features: Tensor) -> Tensor:
    """L_sp for one branch: MSE between the row-normalised Gram matrices of [n,d1] and [n,d2]
    (the same n samples). 0 iff both Gram matrices match after row normalisation."""
    return F.mse_loss(similarity_matrix(aux_features), similarity_matrix(target_features))


def weighted_ce(logits: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """L_wce: mean cross-entropy of logits [B,C] scaled per sample by sigma [B] in (0,1)."""
    return F.cross_entropy(sigma[:, None] * logits.float(), y)


def class_similarity_in_batch(emb: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """m[i,c] = mean over batch members j of class c of cos(emb_i, emb_j) (self included);
    NaN where class c is absent from the batch. emb [B,D] -> [B,C]."""
    e = F.normalize(emb.float(), dim=1)
    members = F.one_hot(y, num_classes).float()  # [B,C]
    counts = members.sum(0)
    m = (e @ e.T) @ members / counts.clamp_min(1)
    return torch.where(counts > 0, m, torch.nan)  # NaN only via where: gradients stay finite


def normalized_class_means(emb: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Per-class mean of L2-normalised embeddings [C,D]; NaN rows for classes without samples."""
    e = F.normalize(emb.float(), dim=1)
    members = F.one_hot(y, num_classes).float()
    counts = members.sum(0)[:, None]
    return torch.where(counts > 0, members.T @ e / counts.clamp_min(1), torch.nan)


def class_similarity_from_means(emb: Tensor, class_means: Tensor) -> Tensor:
    """m[i,c] = <emb_i/|emb_i|, class_means[c]>: the mean cosine to class c's members when
    ``class_means`` comes from ``normalized_class_means``. NaN rows give NaN columns. -> [B,C]."""
    present = ~torch.isnan(class_means).any(1)
    means = torch.where(present[:, None], class_means.float(), 0.0)
    return torch.where(present, F.normalize(emb.float(), dim=1) @ means.T, torch.nan)


def minmax_rows(m: Tensor) -> Tensor:
    """Per-row min-max scaling to [0,1] over the defined (non-NaN) entries of m [B,C].

    Undefined entries (classes without members) become 0, i.e. "least similar"; a row whose
    defined entries are all equal becomes 0 everywhere.
    """
    defined = ~torch.isnan(m)
    m = torch.where(defined, m, 0.0)
    big = m.detach().abs().amax() + 1.0  # finite sentinel: keeps every gradient finite
    lo = torch.where(defined, m, big).amin(1, keepdim=True)
    hi = torch.where(defined, m, -big).amax(1, keepdim=True)
    scaled = (m - lo) / (hi - lo).clamp_min(1e-8)
    return torch.where(defined, scaled, 0.0)
