"""ratios= (a ratio per layer) and ignored= by glob / class: layers chosen the way peers' configs do."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, PruningError
from netsculpt.surgery.verify import pruning_error


@pytest.fixture(scope="module")
def resnet20() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)


@pytest.fixture(scope="module")
def lenet() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)


def _outs(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_glob_prunes_only_the_layers_it_names(resnet20) -> None:
    model, x = resnet20
    small = ns.prune(model, x, ratios={"layer3.*.conv1": 0.5}, round_to=1)
    before, after = _outs(model), _outs(small)
    for name, width in after.items():
        halved = name.startswith("layer3.") and name.endswith("conv1")
        assert width == (before[name] // 2 if halved else before[name]), name
    assert _outs(model) == before  # the original is untouched


def test_later_keys_override_and_others_take_ratio(resnet20) -> None:
    model, x = resnet20
    ratios = {"*": 0.5, "layer3.*": 0.75, "layer1.0.conv1": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # conv1's BatchNorm, named by "*", follows conv1's own key
        small = ns.prune(model, x, ratio=0.25, ratios=ratios, round_to=1)
    after = _outs(small)
    assert after["layer1.0.conv1"] == 16  # the last key that names it
    assert after["layer2.1.conv1"] == 16  # "*": 0.5 of 32
    assert after["layer3.1.conv1"] == 16  # "layer3.*": 0.75 of 64
    plan, _ = ns.plan_pruning(model, x, ratio=0.25, ratios={"layer2.*": 0.5}, round_to=1)
    assert plan.meta["ratios"] == {"layer2.*": 0.5} and plan.meta["ratio"] == 0.25
    assert ns.apply_plan(model, plan, x)(x).shape == (1, 10)
    other = _outs(ns.apply_plan(model, plan, x))
    assert other["layer1.0.conv1"] == 12 and other["layer2.0.conv1"] == 16  # 0.25 elsewhere


def test_class_and_module_keys(lenet) -> None:
    model, x = lenet
    small = ns.prune(model, x, ratios={nn.Conv2d: 0.5, model.conv2: 0.2}, round_to=1)
    assert (small.conv1.out_channels, small.conv2.out_channels, small.fc1.out_features) == (10, 40, 500)
    # a ratio per layer is still an exact prune: same outputs as the original with those channels zeroed
    plan, graph = ns.plan_pruning(model, x, ratios={nn.Linear: 0.5}, round_to=1)
    assert small.fc1.out_features == 500 and len(plan.keep) == 1
    assert pruning_error(model, graph, plan, x) < 1e-4


def test_coupled_layers_given_two_ratios_take_the_smaller_with_a_warning(resnet20) -> None:
    model, x = resnet20
    with pytest.warns(NetsculptWarning, match=r"share their channels .* loses 0.25"):
        small = ns.prune(model, x, ratios={"layer3.0.conv2": 0.5, "layer3.1.conv2": 0.25}, round_to=1)
    assert _outs(small)["layer3.2.conv2"] == 48  # the residual stage is one group
    with pytest.warns(NetsculptWarning, match=r"'fc' selects no prunable channel group"):
        ns.prune(model, x, ratios={"fc": 0.5, "conv1": 0.5}, round_to=1)


def test_a_block_stands_for_its_layers(resnet20) -> None:
    model, x = resnet20
    small = ns.prune(model, x, ratios={model.layer2: 0.5}, round_to=1)  # a module object, as TP's dict
    after = _outs(small)
    assert after["layer2.1.conv1"] == 16 and after["layer2.0.shortcut.0"] == 16
    assert after["layer1.0.conv1"] == 16 and after["layer3.0.conv1"] == 64
    assert _outs(ns.prune(model, x, ratios={"layer2": 0.5}, round_to=1)) == after
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fc's pinned group, asked for 0, is not worth a warning
        plan, _ = ns.plan_pruning(model, x, ratios={model.layer2: 0.5, nn.Linear: 0.0}, round_to=1)
    assert plan.meta["ratios"] == {"layer2": 0.5, "Linear": 0.0}  # plain JSON in the saved record


def test_group_id_key(resnet20) -> None:
    model, x = resnet20
    gid = next(g.id for g in ns.trace(model, x).prunable_groups if "layer2.1.conv1" in g.id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = ns.prune(model, x, ratios={gid: 0.5}, round_to=1)
    assert _outs(small)["layer2.1.conv1"] == 16 and _outs(small)["layer2.2.conv1"] == 32


def test_mistakes_are_named(resnet20) -> None:
    model, x = resnet20
    with pytest.raises(PruningError, match=r"no module called 'layr3.0.conv1'; did you mean layer3.0.conv1"):
        ns.prune(model, x, ratios={"layr3.0.conv1": 0.5})
    with pytest.raises(PruningError, match=r"pattern 'block\*' matches no module"):
        ns.prune(model, x, ratios={"block*": 0.5})
    with pytest.raises(PruningError, match=r"ratios\['conv1'\]: ratio must be in \[0, 1\)"):
        ns.prune(model, x, ratios={"conv1": 1.5})
    with pytest.raises(PruningError, match=r"no Linear6 module|no ReLU6 module"):
        ns.prune(model, x, ratios={nn.ReLU6: 0.5})
    with pytest.raises(PruningError, match=r"not with target="):
        ns.prune(model, x, ratios={"conv1": 0.5}, target="macs=0.5")
    with pytest.raises(PruningError, match=r"round_to='auto' is not supported"):
        ns.prune(model, x, ratios={"conv1": 0.5}, round_to="auto")
    with pytest.raises(PruningError, match=r"ratios= takes a dict"):
        ns.prune(model, x, ratios=[("conv1", 0.5)])


def test_ignored_takes_globs_and_classes(resnet20, lenet) -> None:
    model, x = resnet20
    small = ns.prune(model, x, ratio=0.5, ignored=["layer3.*"], round_to=1)
    after = _outs(small)
    assert all(after[n] == 64 for n in after if n.startswith("layer3."))
    assert after["layer1.0.conv1"] == 8
    net, y = lenet
    kept = ns.prune(net, y, ratio=0.5, ignored=nn.Linear, round_to=1)
    assert (kept.conv1.out_channels, kept.fc1.out_features) == (10, 500)
    with pytest.raises(PruningError, match=r"ignored: the pattern 'fc\?\?' matches no module"):
        ns.prune(net, y, ignored=["fc??"])


def test_prune_iteratively_takes_an_ignored_glob(lenet) -> None:
    model, x = lenet
    small = ns.prune_iteratively(model, x, target="macs=0.6", steps=2, ignored=["fc*"], round_to=1)
    assert small.fc1.out_features == 500
    assert (small.conv1.out_channels, small.conv2.out_channels) != (20, 50)


def test_layer_keys_from_text_are_torch_nn_classes_or_names() -> None:
    """The CLI and recipes write classes by name; only torch.nn is looked up (nothing is imported)."""
    from netsculpt.allocate.per_layer import key_from_text
    from netsculpt.errors import ConfigError

    assert {key_from_text(t) for t in ("Linear", "nn.Linear", "torch.nn.Linear")} == {nn.Linear}
    texts = ("fc", "linear", "layer4.*", "os.System")  # names and globs stay text, for the model to check
    assert [key_from_text(t) for t in texts] == list(texts)
    with pytest.raises(ConfigError, match=r"'torch\.nn\.conv2D' is not a torch\.nn module class; did you"):
        key_from_text("torch.nn.conv2D")
    with pytest.raises(ConfigError, match=r"not a torch\.nn module class"):
        key_from_text("nn.Parameter")  # a torch.nn class, but no layer
