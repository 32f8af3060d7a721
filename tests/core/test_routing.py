"""Routing by label: auxiliary branch c never learns from class c; the mining pass is gradient-free."""

import copy

import pytest
import torch

from dmue_core import DMUE, DMUEConfig

C = 4
Y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3])


def _model(**overrides) -> DMUE:
    torch.manual_seed(0)
    return DMUE(DMUEConfig(num_classes=C, backbone="fer_cnn", **overrides)).train()


def _aux_grads(model: DMUE, branch: int) -> list[torch.Tensor]:
    params = [*model.aux_stages[branch].parameters(), *model.aux_heads[branch].parameters()]
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("official", [False, True])
def test_each_branch_sees_exactly_its_rows(official):
    model = _model(official_mining_stats=official)
    calls: dict[int, list] = {c: [] for c in range(C)}
    trunk_out = []
    model.trunk.register_forward_hook(lambda m, i, o: trunk_out.append(o.detach()))
    for c, stage in enumerate(model.aux_stages):
        stage.register_forward_hook(lambda m, i, o, c=c: calls[c].append((i[0].detach(), torch.is_grad_enabled())))
    model.training_step(torch.randn(len(Y), 3, 32, 32), Y, epoch=7)
    h = trunk_out[0]
    for c in range(C):
        (train_in, train_grad), (mine_in, mine_grad) = calls[c]
        assert train_grad and torch.equal(train_in, h[Y != c])  # auxiliary pass: S_c only
        assert not mine_grad and torch.equal(mine_in, h[Y == c])  # mining pass: class c only


def test_aux_fraction_trains_each_branch_on_a_random_half_of_its_rows_only():
    y = torch.arange(40) % C
    model = _model(aux_fraction=0.5)
    calls: dict[int, list] = {c: [] for c in range(C)}
    trunk_out = []
    model.trunk.register_forward_hook(lambda m, i, o: trunk_out.append(o.detach()))
    for c, stage in enumerate(model.aux_stages):
        stage.register_forward_hook(lambda m, i, o, c=c: calls[c].append(i[0].detach()))
    out = model.training_step(torch.randn(len(y), 3, 32, 32), y, epoch=7)
    h = trunk_out[0]
    subsets = []
    for c in range(C):
        train_in, mine_in = calls[c]
        allowed = h[y != c]
        assert len(train_in) == 15  # ceil(0.5 * 30) rows of S_c
        matches = (train_in[:, None] == allowed[None]).flatten(2).all(-1)  # [15, 30]
        assert (matches.sum(1) == 1).all()  # every row is a distinct row of S_c, never class c
        subsets.append(matches.any(0))
        assert torch.equal(mine_in, h[y == c])  # mining is not subsampled
    assert out.notes["aux_rows"] == 4 * 15
    assert len({tuple(s.tolist()) for s in subsets}) > 1  # drawn at random per branch


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_aux_fraction_must_be_in_0_1(bad):
    with pytest.raises(ValueError, match="aux_fraction"):
        DMUEConfig(num_classes=C, aux_fraction=bad)


@pytest.mark.parametrize("detach", [True, False])
def test_a_batch_of_class_c_gives_branch_c_no_gradient(detach):
    model = _model(aux_detach_trunk=detach)
    y = torch.full((5,), 2)
    out = model.training_step(torch.randn(5, 3, 32, 32), y, epoch=3)
    out.loss.backward()
    assert out.notes["aux_branches_empty"] == 1
    assert all(g.abs().sum() == 0 for g in _aux_grads(model, 2))
    assert all(g.abs().sum() > 0 for g in _aux_grads(model, 0))


def test_branch_gradient_does_not_depend_on_its_own_class_samples():
    """With a frozen trunk (per-sample features) and gamma_sp=0 (L_sp ties branch c to the target,
    whose batch statistics include class c), branch c's gradient only depends on S_c."""
    model = _model(gamma_sp=0.0)
    model.trunk.eval()
    x = torch.randn(len(Y), 3, 32, 32)
    x_changed = x.clone()
    x_changed[Y == 1] = torch.randn(int((Y == 1).sum()), 3, 32, 32)
    grads = []
    for inputs in (x, x_changed):
        m = copy.deepcopy(model)
        torch.manual_seed(5)  # same dropout masks
        m.training_step(inputs, Y, epoch=7).loss.backward()
        grads.append((_aux_grads(m, 1), _aux_grads(m, 0)))
    (branch1, branch0), (branch1_changed, branch0_changed) = grads
    for a, b in zip(branch1, branch1_changed):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(branch0, branch0_changed))


@pytest.mark.parametrize("official", [False, True])
def test_no_gradient_flows_through_the_mining_pass(official):
    model = _model(official_mining_stats=official, aux_detach_trunk=True)
    x = torch.randn(len(Y), 3, 32, 32)
    grads = []
    for w_soft in (0.0, 10.0):
        m = copy.deepcopy(model)
        m.cfg.w_soft = w_soft
        torch.manual_seed(5)
        out = m.training_step(x, Y, epoch=7)
        assert not out.latent.requires_grad
        out.loss.backward()
        grads.append([g for c in range(C) for g in _aux_grads(m, c)])
        target_grad = m.target_head.weight.grad.clone()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    assert target_grad.abs().sum() > 0
