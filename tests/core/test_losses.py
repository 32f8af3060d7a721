import math

import pytest
import torch

from dmue_core.config import TrainConfig
from dmue_core.losses import (
    aux_consensus,
    aux_labels,
    latent_from_aux_logits,
    minmax_rows,
    similarity_matrix,
    soft_loss,
    sp_loss,
    weighted_ce,
)
from dmue_core.ramps import ramp_down, ramp_up
from dmue_core.schedule import lr_at


def test_latent_is_zero_at_label_sums_to_one_and_keeps_class_order():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 1])
    latent = latent_from_aux_logits(logits, y, temperature=1.2)
    assert latent.shape == (5, 4)
    assert torch.all(latent[torch.arange(5), y] == 0)
    torch.testing.assert_close(latent.sum(1), torch.ones(5))
    q = torch.softmax(logits, 1) ** (1 / 1.2)
    q = q / q.sum(1, keepdim=True)  # the official power normalisation
    others = [[c for c in range(4) if c != label] for label in y.tolist()]
    torch.testing.assert_close(latent[torch.arange(5)[:, None], torch.tensor(others)], q)


def test_temperature_above_one_flattens():
    latent = latent_from_aux_logits(torch.log(torch.tensor([[0.7, 0.2, 0.1]])), torch.tensor([0]), 1.2)
    torch.testing.assert_close(latent, torch.tensor([[0.0, 0.645, 0.227, 0.128]]), atol=1e-3, rtol=0)


def test_aux_labels_reindex_around_branch_class():
    assert aux_labels(torch.tensor([0, 1, 3, 4]), 2).tolist() == [0, 1, 2, 3]


def test_soft_loss_ignores_labelled_entry_and_averages_over_all_entries():
    z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    latent = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    p = torch.softmax(z, 1)
    expected = ((p[0, 1:] - 0.5) ** 2).sum() + (p[1, 0] - 1) ** 2 + p[1, 2] ** 2
    torch.testing.assert_close(soft_loss(z, latent, y), expected / 6)


def test_sp_loss_zero_iff_row_normalised_grams_match():
    torch.manual_seed(0)
    f = torch.randn(6, 4)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4))
    same_gram = torch.cat([f @ rotation, torch.zeros(6, 3)], 1)  # other dim, same Gram matrix
    assert sp_loss(f, same_gram) < 1e-10
    assert sp_loss(f, torch.randn(6, 7)) > 1e-3
    torch.testing.assert_close(similarity_matrix(f).norm(dim=1), torch.ones(6))


def test_weighted_ce_scales_logits_per_sample():
    z, y = torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 1])
    plain = torch.nn.functional.cross_entropy(z, y)
    torch.testing.assert_close(weighted_ce(z, torch.ones(2), y), plain)
    assert weighted_ce(z, torch.full((2,), 0.1), y) > plain  # small sigma flattens the softmax


def test_minmax_rows_scales_defined_entries_and_zeroes_absent_classes():
    m = torch.tensor([[0.2, float("nan"), 0.6, 0.4], [0.5, 0.5, float("nan"), 0.5]], requires_grad=True)
    out = minmax_rows(m)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    out.sum().backward()
    assert torch.isfinite(m.grad).all()


@pytest.mark.parametrize(
    "epoch,up", [(0, 0.0067), (1, 0.031), (2, 0.108), (3, 0.287), (4, 0.574), (5, 0.870), (6, 1.0), (20, 1.0)]
)
def test_ramp_up_table(epoch, up):
    assert ramp_up(epoch, 6) == pytest.approx(up, abs=0.01)


@pytest.mark.parametrize(
    "epoch,down", [(0, 1.0), (5, 1.0), (7, 0.98), (10, 0.85), (15, 0.70), (20, 0.61), (30, 0.53), (35, 0.50)]
)
def test_ramp_down_table(epoch, down):
    assert ramp_down(epoch, 6) == pytest.approx(down, abs=0.01)


def test_ramp_rejects_non_positive_width():
    with pytest.raises(ValueError):
        ramp_up(0, 0)


OFFICIAL_TABLE = [  # method doc §4.2: (epochs, lr backbone, lr classifier)
    (range(0, 4), 1e-4, 1e-3),
    (range(4, 6), 1e-4, 5e-4),
    (range(6, 8), 5e-5, 5e-4),
    (range(8, 12), 5e-5, 1e-4),
    (range(12, 14), 1e-5, 1e-4),
    (range(14, 22), 1e-5, 1e-5),
    (range(22, 25), 5e-5, 5e-5),
    (range(25, 36), 1e-5, 1e-5),
]


def test_official_lr_table():
    cfg = TrainConfig()
    for epochs, bb, cl in OFFICIAL_TABLE:
        for e in epochs:
            assert lr_at(e, cfg) == pytest.approx((bb, cl)), e


def test_official_lr_table_stretches_and_scales():
    cfg = TrainConfig(epochs=72, lr_backbone=2e-4, lr_classifier=2e-3)
    assert lr_at(7, cfg) == pytest.approx((2e-4, 2e-3))  # official epoch 3.5
    assert lr_at(8, cfg) == pytest.approx((2e-4, 1e-3))  # official epoch 4
    assert lr_at(44, cfg) == pytest.approx((1e-4, 1e-4))  # official epoch 22: warm restart
    assert lr_at(3, TrainConfig(epochs=18)) == pytest.approx((5e-5, 5e-4))  # official epoch 6


def test_cosine_schedule():
    cfg = TrainConfig(epochs=10, schedule="cosine")
    assert lr_at(0, cfg) == pytest.approx((1e-4, 1e-3))
    assert lr_at(5, cfg) == pytest.approx((0.5e-4, 0.5e-3))
    assert lr_at(10, cfg)[0] == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(lr_at(2.5, cfg)[1] / lr_at(2.5, cfg)[0], 10.0)


def test_consensus_is_not_capped_by_the_branch_that_cannot_predict_a_class():
    """Three classes, a face given 0 that is really 2: branch 1 (classes 0, 2) says 2, branch 2
    (classes 0, 1) cannot say 2 and says 0. A plain mean of the two rates 0 and 2 alike (1/2 each);
    per class over the branches able to predict it, 2 leads 2/3 to 1/3."""
    aux = torch.zeros(1, 3, 3)
    aux[0, 0] = torch.tensor([0.0, 0.5, 0.5])  # branch 0 never trained on the given label: ignored
    aux[0, 1] = torch.tensor([0.0, 0.0, 1.0])
    aux[0, 2] = torch.tensor([1.0, 0.0, 0.0])
    got = aux_consensus(aux, torch.tensor([0]))
    torch.testing.assert_close(got, torch.tensor([[1 / 3, 0.0, 2 / 3]]))
    same = torch.full((1, 3, 3), 0.5) * (1 - torch.eye(3))  # every branch undecided between its two classes
    torch.testing.assert_close(aux_consensus(same, torch.tensor([1])), torch.full((1, 3), 1 / 3))
