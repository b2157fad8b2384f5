"""The push loss and the gpp criterion: they measure what LDA says they measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netsculpt as ns
from netsculpt.errors import ConfigError, PruningError
from netsculpt.gpp import PushLoss, lda_channel_scores, scatter_ratio_and_decorrelation
from netsculpt.importance import get_criterion


def _stats(feats: torch.Tensor, labels: torch.Tensor):
    classes = int(labels.max()) + 1
    sums = torch.zeros(classes, feats.shape[1], dtype=torch.float64).index_add_(0, labels, feats)
    return sums, torch.bincount(labels, minlength=classes), feats.T @ feats


def test_lda_scores_pick_the_discriminative_channel() -> None:
    """Channel 0 carries the class (means 0 vs 3), channels 1-2 are noise of larger variance."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 2
    feats = torch.randn(400, 3, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 3.0, 3.0], dtype=torch.float64
    )
    feats[:, 0] += 3.0 * labels
    scores = lda_channel_scores(*_stats(feats, labels))
    assert int(scores.argmax()) == 0 and float(scores[0]) > 3 * float(scores[1:].max())


def test_lda_scores_do_not_depend_on_channel_units() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(300) % 3
    feats = torch.randn(300, 4, generator=g, dtype=torch.float64) + labels[:, None].double() * torch.tensor(
        [1.0, 0.5, 0.0, 0.2], dtype=torch.float64
    )
    scaled = feats * torch.tensor([10.0, 0.1, 1.0, 5.0], dtype=torch.float64)
    a, b = lda_channel_scores(*_stats(feats, labels)), lda_channel_scores(*_stats(scaled, labels))
    assert torch.allclose(a, b, rtol=1e-3)


def test_scatter_ratio_rewards_separation_and_decorrelation_penalises_covariance() -> None:
    labels = torch.arange(64) % 4
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(64, 5, generator=g)
    apart, _ = scatter_ratio_and_decorrelation(noise + 5 * labels[:, None].float(), labels)
    mixed, _ = scatter_ratio_and_decorrelation(noise, labels)
    assert float(apart) < float(mixed) < 0  # more separation → a lower (more negative) loss
    _, independent = scatter_ratio_and_decorrelation(noise, labels)
    _, correlated = scatter_ratio_and_decorrelation(noise[:, :1].repeat(1, 5) + 0.1 * noise, labels)
    assert float(correlated) > 10 * float(independent)


def test_push_loss_alternates_task_and_push_steps() -> None:
    model = ns.create_model("lenet5")
    loss = PushLoss("relu2", push_weight=1.0)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    task, _ = loss(model, x, y)
    push, logits = loss(model, x, y)
    assert logits.shape == (16, 10) and loss.last != {} and float(push) != float(task)
    push.backward()
    assert model.conv2.weight.grad is not None
    with pytest.raises(ConfigError, match="nope"):
        PushLoss("nope")(model, x, y)


def test_gpp_is_registered_and_scores_lenet_channels() -> None:
    assert "gpp" in ns.list_criteria()
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    data = [(torch.randn(40, 1, 28, 28), torch.arange(40) % 10) for _ in range(2)]
    graph = ns.trace(model, x)
    scores = get_criterion("gpp").score(model, graph, data)
    assert {len(s) for s in scores.values()} == {20, 50, 500} and all(np.all(s >= 0) for s in scores.values())
    with pytest.raises(PruningError, match="one class"):
        get_criterion("gpp").score(
            model, graph, [(torch.randn(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))]
        )


def test_fisher_concentration_rewards_separation_on_few_channels() -> None:
    from netsculpt.gpp.push import fisher_concentration

    labels = torch.arange(200) % 2
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(200, 8, generator=g)
    one = noise.clone()
    one[:, 0] += 4 * labels  # all the separation on channel 0
    spread = noise + 4 / 8**0.5 * labels[:, None].float()  # the same separation over all 8 channels
    assert float(fisher_concentration(one, labels)) > 0.9 > 0.5 > float(fisher_concentration(spread, labels))
    loss = PushLoss("relu2", sparse_weight=1.0)
    assert loss.recipe()["sparse_weight"] == 1.0
    with pytest.raises(ConfigError, match="sparse_weight"):
        PushLoss("relu2", sparse_weight=-1.0)


def test_keep_push_moves_energy_onto_the_kept_set_and_shrink_scores_follow_it() -> None:
    """With ``keep`` the push chooses a kept set and drives the other channels' activity share down; the
    gpp criterion with ``shrink`` then ranks the kept set first (without it, faint channels count fully)."""
    torch.manual_seed(0)
    model = ns.create_model("lenet5")
    loss = PushLoss(["relu1", "relu2"], push_weight=1.0, keep={"relu1": 2, "relu2": 3}, rest_weight=10.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.003)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.arange(64) % 10
    x = x + y[:, None, None, None].float() * 0.3
    shares = []
    for _ in range(40):
        value, _ = loss(model, x, y)
        opt.zero_grad()
        value.backward()
        opt.step()
        shares.append(loss.last.get("rest_share", float("nan")))
    # the other channels' (activity + Fisher) share, 0..2: 1.43 at the first push step, ~0.3 at the end
    assert shares[-1] < 0.5 * shares[1]
    assert set(loss.scores) == {"relu1", "relu2"} and loss.recipe()["keep"] == {"relu1": 2, "relu2": 3}
    state = loss.runtime_state()
    again = PushLoss(["relu1", "relu2"], push_weight=1.0, keep={"relu1": 2, "relu2": 3}, rest_weight=10.0)
    again.load_runtime_state(state)
    assert all(torch.equal(again.scores[k], loss.scores[k]) for k in loss.scores)
    with pytest.raises(ConfigError, match="keep"):
        PushLoss("relu1", keep={"relu2": 2})


def test_shrink_discounts_a_faint_but_clean_channel() -> None:
    """Channel 0 separates the classes cleanly at 1/100 of the other channels' scale; channel 1 separates
    them noisily at full scale. Unit-free scores prefer channel 0; with shrink the loud one counts."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(400) % 2
    feats = torch.randn(400, 3, generator=g, dtype=torch.float64)
    feats[:, 0] = 0.01 * (labels + 0.1 * feats[:, 0])
    feats[:, 1] += 1.5 * labels
    plain = lda_channel_scores(*_stats(feats, labels))
    shrunk = lda_channel_scores(*_stats(feats, labels), shrink=1.0)
    assert int(plain.argmax()) == 0 and int(shrunk.argmax()) == 1
    with pytest.raises(ConfigError, match="shrink"):
        get_criterion("gpp", shrink=-1.0)


def test_push_aims_at_the_set_its_shrink_scores_choose_and_reports_it() -> None:
    """The kept set is chosen with the pruning criterion's ``shrink``: on features where the unit-free and
    the regularised scores disagree (a faint clean channel vs a loud noisy one) the two losses aim at
    different channels, and ``kept()`` reports the channel each aimed at."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(256) % 2
    feats = torch.randn(256, 3, generator=g)
    feats[:, 0] = 0.01 * (labels + 0.1 * feats[:, 0])
    feats[:, 1] += 1.5 * labels

    class Fixed(torch.nn.Module):
        """The features above as a 'layer' whose output the push reads, plus a linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.feat = torch.nn.Identity()
            self.head = torch.nn.Linear(3, 2)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.head(self.feat(feats[idx]))

    model, idx = Fixed(), torch.arange(256)
    chosen = {}
    for shrink in (0.0, 1.0):
        loss = PushLoss("feat", keep={"feat": 1}, rest_weight=1.0, push_every=1, shrink=shrink)
        with pytest.raises(ConfigError, match="not chosen"):
            loss.kept()
        loss(model, idx, labels)
        chosen[shrink] = loss.kept()["feat"]
    assert chosen == {0.0: [0], 1.0: [1]}
    assert "shrink" not in PushLoss("feat").recipe()
    assert PushLoss("feat", shrink=1.0).recipe()["shrink"] == 1.0
    with pytest.raises(ConfigError, match="shrink"):
        PushLoss("feat", shrink=-1.0)


def test_a_channels_last_linear_is_pushed_on_its_features() -> None:
    """ConvNeXt's pointwise Linear outputs (N, H, W, C): the push read dim 1 (H) as the channels."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(32) % 2
    images = torch.randn(32, 5, 5, 4, generator=g)  # (N, H, W, C): channels last, as in ConvNeXt
    images[..., 2] += 2.0 * labels.view(-1, 1, 1)  # only channel 2 separates the classes
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Flatten(), torch.nn.Linear(150, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(6, 4))  # output channel i = input channel i (4, 5 are zero)
        model[0].bias.zero_()
    loss = PushLoss("0", keep={"0": 1}, push_every=1)
    loss(model, images, labels)
    assert loss.kept() == {"0": [2]}


@pytest.mark.parametrize("layer", ["layer1.0.relu", "layer2.1.conv2"])
def test_the_push_loss_leaves_the_network_it_observes_unchanged(layer) -> None:
    """Its hook returned the feature it kept: torchvision's shared relu (called twice per block) got its
    first call's output back the second time (logits 0.59 off, a crash after a grow stage)."""
    torch.manual_seed(0)
    model = ns.create_model("torchvision:resnet18", num_classes=10).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    with torch.no_grad():
        _, logits = PushLoss([layer])(model, x, y)
        assert torch.equal(logits, model(x))
