"""Warm starts from an earlier DMUE model or exported plain model, classes matched by name."""

import pytest
import torch

from dmue_core import DMUE, DMUEConfig
from dmue_core.export import to_target_model
from dmue_core.warm_start import from_dmue, from_plain

OLD, NEW = ["a", "b", "c"], ["c", "a", "d"]  # c and a shared (another order), b dropped, d new


def _models() -> tuple[DMUE, DMUE]:
    torch.manual_seed(0)
    old = DMUE(DMUEConfig(num_classes=3, backbone="fer_cnn"))
    for p in old.parameters():
        p.data.normal_(0, 0.1)
    for neck in old.necks:
        neck.running_mean.normal_(0, 0.1)
        neck.running_var.uniform_(0.5, 2.0)
    return old, DMUE(DMUEConfig(num_classes=3, backbone="fer_cnn"))


def test_from_dmue_copies_trunk_branches_and_rows_by_class_name():
    old, new = _models()
    fresh_d = new.target_head.weight[2].clone()
    report = from_dmue(new, old, NEW, OLD)
    assert report.matched == ["c", "a"] and report.new == ["d"]
    for mine, theirs in zip(new.trunk.state_dict().values(), old.trunk.state_dict().values()):
        torch.testing.assert_close(mine, theirs)
    torch.testing.assert_close(new.target_head.weight[0], old.target_head.weight[2])  # c
    torch.testing.assert_close(new.target_head.weight[1], old.target_head.weight[0])  # a
    torch.testing.assert_close(new.target_head.weight[2], fresh_d)  # d keeps its fresh row
    torch.testing.assert_close(new.target_neck.running_var, old.target_neck.running_var)
    # auxiliary branch of c (new index 0) is the old branch of c (old index 2); its rows: a (shared), d (new)
    torch.testing.assert_close(new.aux_stages[0][0].weight, old.aux_stages[2][0].weight)
    torch.testing.assert_close(new.aux_heads[0].weight[0], old.aux_heads[2].weight[0])  # a among old's (a, b)
    # the new class's auxiliary branch starts from the old target stage
    torch.testing.assert_close(new.aux_stages[2][0].weight, old.target_stage[0].weight)


def test_from_plain_reproduces_the_exported_logits_of_shared_classes_but_the_bias():
    old, new = _models()
    plain = to_target_model(old)
    report = from_plain(new, plain.state_dict(), NEW, OLD)
    assert report.source_kind == "plain" and report.new == ["d"]
    x = torch.randn(4, 3, 32, 32)
    new.eval()
    with torch.no_grad():
        expected = plain(x) - plain.classifier.bias
        got = new(x)
    torch.testing.assert_close(got[:, 0], expected[:, 2], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[:, 1], expected[:, 0], atol=1e-4, rtol=1e-4)
    for stage in new.aux_stages:
        torch.testing.assert_close(stage[0].weight, new.target_stage[0].weight)


def test_another_backbone_is_refused_with_the_fix():
    old, _ = _models()
    other = DMUE(DMUEConfig(num_classes=3, backbone="resnet18", small_input=True))
    with pytest.raises(ValueError, match="backbone and input stem"):
        from_dmue(other, old, NEW, OLD)
    with pytest.raises(ValueError, match="backbone and input stem"):
        from_plain(other, to_target_model(old).state_dict(), NEW, OLD)
