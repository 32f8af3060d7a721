import pytest
import torch

from dmue_core import DMUE, DMUEConfig, normalized_class_means
from dmue_core.losses import class_similarity_from_means, class_similarity_in_batch


@pytest.fixture
def model() -> DMUE:
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn"))
    for p in model.uncertainty_mlp.parameters():  # a less flat MLP than the default init
        p.data.normal_(0, 1)
    return model


def test_class_similarity_in_batch_is_the_mean_pairwise_cosine():
    torch.manual_seed(0)
    emb, y = torch.randn(5, 8), torch.tensor([0, 0, 1, 2, 0])
    m = class_similarity_in_batch(emb, y, 4)
    cos = torch.nn.functional.cosine_similarity(emb[:, None], emb[None], dim=2)
    torch.testing.assert_close(m[:, 0], cos[:, [0, 1, 4]].mean(1))
    torch.testing.assert_close(m[:, 2], cos[:, 3])
    assert torch.isnan(m[:, 3]).all()  # class 3 absent


def test_stats_version_equals_in_batch_version_with_means_of_the_same_batch(model):
    torch.manual_seed(1)
    emb, y = torch.randn(6, model.feat_dim), torch.tensor([0, 0, 1, 1, 1, 2])  # class 3 absent
    means = normalized_class_means(emb, y, 4)
    torch.testing.assert_close(
        class_similarity_from_means(emb, means), class_similarity_in_batch(emb, y, 4), equal_nan=True
    )
    model.eval()
    in_batch = model.uncertainty(emb, y)
    from_stats = model.uncertainty_from_stats(emb, y, means)
    assert (in_batch - from_stats).abs().max() < 1e-6
    assert ((in_batch > 0) & (in_batch < 1)).all()
    assert in_batch.std() > 1e-3  # the test is not comparing constants


def test_batch_free_score_ignores_batch_companions_and_size(model):
    torch.manual_seed(2)
    model.eval()
    dataset_x, dataset_y = torch.randn(12, 3, 32, 32), torch.arange(12) % 4
    with torch.no_grad():
        means = normalized_class_means(model.embed(dataset_x)[0], dataset_y, 4)
        sample_x, sample_y = dataset_x[:1], dataset_y[:1]
        scores = []
        for companions in (torch.randn(2, 3, 32, 32), torch.randn(9, 3, 32, 32)):
            x = torch.cat([companions, sample_x])
            y = torch.cat([torch.tensor([1] * len(companions)), sample_y])
            emb = model.embed(x)[0]
            scores.append(model.uncertainty_from_stats(emb, y, means)[-1])
            in_batch = model.uncertainty(emb, y)[-1]
    assert abs(scores[0] - scores[1]) < 1e-5
    assert abs(in_batch - scores[1]) > 1e-4  # the in-batch score does depend on the batch


def test_gradients_stay_finite_with_an_absent_class(model):
    emb = torch.randn(4, model.feat_dim, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])  # a plain sum of centred sigmas can be constant
    (model.uncertainty(emb, torch.tensor([0, 0, 1, 2])) * weights).sum().backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_score_outputs_equal_separate_eval_passes():
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn")).eval()
    x, y = torch.randn(9, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3])
    emb, logits, latent, none = model.score_outputs(x, y)
    with torch.no_grad():
        emb2, logits2 = model.embed(x)
    torch.testing.assert_close(emb, emb2)
    torch.testing.assert_close(logits, logits2)
    torch.testing.assert_close(latent, model.mine(x, y))
    assert none is None
    emb3, logits3, latent3, agree = model.score_outputs(x, y, consensus=True)
    torch.testing.assert_close((emb3, logits3, latent3), (emb, logits, latent))  # all-branch pass == routed one
    probs = model.aux_probs(x)
    for i in range(len(y)):  # per class, the mean over the branches that trained on y and can predict it
        others = [c for c in range(4) if c != int(y[i])]
        by_hand = torch.stack([probs[i, [b for b in others if b != k], k].mean() for k in range(4)])
        torch.testing.assert_close(agree[i], by_hand / by_hand.sum())
    torch.testing.assert_close(agree.sum(dim=1), torch.ones(len(y)))
    assert (agree[torch.arange(len(y)), y] > 0).all()  # unlike the latent, it rates the given label


def _class_zero_given_up(model: DMUE) -> None:
    """Bias the MLP so that any face labelled 0 gets sigma ~ 0 before centring (the collapse
    a trained MLP can learn: the one-hot label is one of its inputs)."""
    with torch.no_grad():
        model.uncertainty_mlp[0].weight[:, 4] = 0.0  # one-hot slot of class 0 (4 similarity inputs first)
        model.uncertainty_mlp[0].bias.zero_()
        model.uncertainty_mlp[0].weight[0, 4] = 20.0
        model.uncertainty_mlp[2].weight.zero_()
        model.uncertainty_mlp[2].weight[0, 0] = -1.0
        model.uncertainty_mlp[2].bias.zero_()


def test_centred_sigma_cannot_give_up_a_whole_class():
    """Centred: in train mode logit(sigma) averages 0 within each class of the batch, however the
    MLP treats the class; the paper's (default) sigma for class 0 collapses."""
    torch.manual_seed(3)
    emb, y = torch.randn(8, 256), torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])
    centred = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn", centred_uncertainty=True))
    plain = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn"))
    for m in (centred, plain):
        _class_zero_given_up(m)
    assert plain.uncertainty(emb, y)[:3].max() < 1e-6
    logit = torch.logit(centred.uncertainty(emb, y).detach().double())
    for c in range(4):
        assert abs(float(logit[y == c].mean())) < 1e-5
    assert not hasattr(plain, "uncertainty_centre")


def test_running_centres_follow_the_batches_and_serve_eval_mode():
    torch.manual_seed(4)
    model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn", centred_uncertainty=True))
    _class_zero_given_up(model)
    emb, y = torch.randn(8, 256), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])  # class 3 absent
    train_sigma = model.uncertainty(emb, y)
    assert model.uncertainty_centre[0] < -1.0 and model.uncertainty_centre[3] == 0.0
    for _ in range(200):
        model.uncertainty(emb, y)
    model.eval()
    torch.testing.assert_close(model.uncertainty(emb, y), train_sigma, atol=1e-4, rtol=0)
    means = normalized_class_means(emb, y, 4)
    torch.testing.assert_close(model.uncertainty_from_stats(emb, y, means), train_sigma, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("cfg", "frozen"),
    [
        (DMUEConfig(num_classes=4, backbone="fer_cnn"), False),
        (DMUEConfig(num_classes=4, backbone="fer_cnn", centred_uncertainty=True), False),
        (DMUEConfig.faithful(4, backbone="fer_cnn"), True),
    ],
)
def test_only_the_official_quirk_freezes_the_uncertainty_mlp_and_neck_weights(cfg, frozen):
    model = DMUE(cfg)
    assert all(p.requires_grad != frozen for p in model.uncertainty_mlp.parameters())
    assert all(neck.weight.requires_grad != frozen for neck in model.necks)


@pytest.mark.parametrize("use", ["probe", "logit_scale"])
def test_probe_sigma_learns_without_reaching_the_classifier(use):
    """With a sigma of ~0 for every face labelled 0, the paper's L_wce gives those faces no
    gradient on the target head; the probe leaves the classifier's gradient as with sigma = 1 and
    still trains the uncertainty MLP."""
    torch.manual_seed(5)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])
    grads = {}
    for name, collapse in (("collapsed", True), ("intact", False)):
        model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn", dropout=0.0, uncertainty_use=use)).train()
        torch.manual_seed(6)
        for p in model.parameters():
            p.data.normal_(0, 0.05)
        if collapse:
            _class_zero_given_up(model)
        out = model.training_step(x, y, epoch=100)  # ramps at their end values
        out.loss.backward()
        grads[name] = model.target_head.weight.grad[0].clone()
        if collapse:
            assert out.uncertainty[:3].max() < 1e-6
        else:  # the MLP learns in both modes
            assert sum(float(p.grad.abs().sum()) for p in model.uncertainty_mlp.parameters()) > 0
    same = torch.allclose(grads["collapsed"], grads["intact"], atol=1e-6)
    assert same == (use == "probe")
