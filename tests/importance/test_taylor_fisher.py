"""Taylor and Group Fisher against the definition: a mask on each channel at the group's mask sites,
differentiated sample by sample."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netsculpt as ns
from netsculpt.errors import ConfigError, NetsculptWarning
from netsculpt.importance import get_criterion

from .conftest import batches


def mask_gradients(model, modules: list[str], size: int, data: list) -> np.ndarray:
    """dL_n/dm per sample, with one mask vector multiplying the output of every module in ``modules``."""
    mask = torch.ones(size, requires_grad=True)
    named = dict(model.named_modules())
    handles = [
        named[m].register_forward_hook(lambda _m, _a, out: out * mask.view(1, -1, *[1] * (out.dim() - 2)))
        for m in modules
    ]
    rows = []
    try:
        for inputs, labels in data:
            for x, y in zip(inputs, labels, strict=True):
                (grad,) = torch.autograd.grad(F.cross_entropy(model(x[None]), y[None]), mask)
                rows.append(grad.double())
    finally:
        for h in handles:
            h.remove()
    return torch.stack(rows).numpy()


@pytest.mark.parametrize(
    ("fixture", "group", "modules"),
    [
        ("lenet", "conv1", ["conv1"]),
        ("resnet20", "conv1", ["bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"]),  # a residual stage
    ],
)
def test_match_the_mask_definition(fixture: str, group: str, modules: list[str], request) -> None:
    model, x, _ = request.getfixturevalue(fixture)
    data = batches(tuple(x.shape[1:]), n_batches=2, batch=3, seed=1)
    graph = ns.trace(model, x)
    size = graph.group(group).size
    dm = mask_gradients(model, modules, size, data)
    taylor = get_criterion("taylor").score(model, graph, data)[group]
    fisher = get_criterion("fisher", normalize=None).score(model, graph, data)[group]
    np.testing.assert_allclose(taylor, np.abs(dm.mean(0)), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(fisher, 0.5 * (dm**2).mean(0), rtol=1e-4, atol=1e-12)


def test_do_not_depend_on_how_samples_are_batched(lenet) -> None:
    """The loss is a batch mean; per-sample gradients must be rescaled so batching changes nothing."""
    model, x, _ = lenet
    graph = ns.trace(model, x)
    one = batches((1, 28, 28), n_batches=1, batch=12, seed=2)
    three = [(one[0][0][i : i + 4], one[0][1][i : i + 4]) for i in (0, 4, 8)]
    for name in ("taylor", "taylor_abs", "fisher"):
        a = get_criterion(name).score(model, graph, one)
        b = get_criterion(name).score(model, graph, three)
        for gid in a:
            # float32 gradients summed in a different order: 1e-5 of the group's largest score
            np.testing.assert_allclose(a[gid], b[gid], rtol=1e-5, atol=1e-5 * np.abs(a[gid]).max())


def test_zero_for_a_channel_whose_activation_is_zero(lenet) -> None:
    model, x, data = lenet
    dead = copy.deepcopy(model)
    with torch.no_grad():
        dead.conv1.weight[3] = 0
        dead.conv1.bias[3] = 0
    graph = ns.trace(dead, x)
    for name in ("taylor", "taylor_abs", "fisher"):
        s = get_criterion(name).score(dead, graph, data)["conv1"]
        assert s[3] == 0.0
        assert (np.delete(s, 3) > 0).all()


def test_fisher_normalisations_are_the_costs_of_one_channel(lenet) -> None:
    """LeNet-5 conv1, per sample: memory = conv1, relu1 (24x24 each) and pool1 (12x12) maps = 1,296
    elements; MACs = its 5x5 filter at 576 positions (14,400) + its 50 5x5 slices of conv2 at 64
    positions (80,000) = 94,400."""
    model, x, data = lenet
    graph = ns.trace(model, x)
    raw = get_criterion("fisher", normalize=None).score(model, graph, data)["conv1"]
    memory = get_criterion("fisher").score(model, graph, data)["conv1"]
    macs = get_criterion("fisher", normalize="macs").score(model, graph, data)["conv1"]
    np.testing.assert_allclose(memory * 1296, raw, rtol=1e-12)
    np.testing.assert_allclose(macs * 94400, raw, rtol=1e-12)
    with pytest.raises(ConfigError, match="normalize"):
        get_criterion("fisher", normalize="flops")


def test_taylor_abs_matches_the_mean_absolute_definition(lenet) -> None:
    model, x, _ = lenet
    data = batches(tuple(x.shape[1:]), n_batches=2, batch=3, seed=1)
    graph = ns.trace(model, x)
    dm = mask_gradients(model, ["conv1"], graph.group("conv1").size, data)
    taylor_abs = get_criterion("taylor_abs").score(model, graph, data)["conv1"]
    np.testing.assert_allclose(taylor_abs, np.abs(dm).mean(0), rtol=1e-4, atol=1e-9)


def test_taylor_abs_keeps_effects_that_cancel_over_samples() -> None:
    """Hidden units (0.9, 1, 0.1) * x feed logits (h0 + h2, h1): at x = 1 both logits are 1, so the
    same input labelled 0 and 1 gives dL/dm = (+-0.45, -+0.5, +-0.05). Every unit matters to each
    sample, but the sample mean cancels: taylor scores ~0, taylor_abs the per-sample magnitudes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 3, bias=False), torch.nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.9], [1.0], [0.1]]))
        model[1].weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    x = torch.ones(2, 1)
    graph = ns.trace(model, x)
    (gid,) = [g.id for g in graph.groups if g.size == 3]
    mixed = [(x, torch.tensor([0, 1]))]
    with pytest.warns(NetsculptWarning, match="same score"):  # every taylor score cancels to 0
        taylor = get_criterion("taylor").score(model, graph, mixed)[gid]
    taylor_abs = get_criterion("taylor_abs").score(model, graph, mixed)[gid]
    np.testing.assert_allclose(taylor, 0.0, atol=1e-7)
    np.testing.assert_allclose(taylor_abs, [0.45, 0.5, 0.05], rtol=1e-6)
    same = [(x, torch.tensor([0, 0]))]  # per-sample signs agree: the two criteria coincide
    agree = get_criterion("taylor").score(model, graph, same)[gid]
    np.testing.assert_allclose(get_criterion("taylor_abs").score(model, graph, same)[gid], agree, rtol=1e-12)
