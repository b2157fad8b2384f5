"""Layers only training runs (auxiliary heads) are traced too; layers nothing runs are named."""

from __future__ import annotations

import copy
import tempfile
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netsculpt as ns
from netsculpt.graph.unrun import unrun_layers
from netsculpt.surgery.verify import pruning_error, random_plan


class AuxNet(nn.Module):
    """A trunk whose middle features also feed an auxiliary head, as in GoogLeNet, in training only."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU())
        self.aux = nn.Sequential(
            nn.Conv2d(24, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.mid(self.stem(x))
        out = self.head(h)
        return (out, self.aux(h)) if self.training else out


def aux_net() -> AuxNet:
    torch.manual_seed(0)
    model = AuxNet()
    model.train()(torch.randn(4, 3, 8, 8))  # materialise the lazy layer, move the BN statistics
    return model.eval()


class Leftover(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.out = nn.Conv2d(8, 4, 1)
        self.unused = nn.Linear(8, 2)  # built, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.conv(x))).mean((2, 3))


def test_training_only_head_is_traced_and_pruned_with_its_input() -> None:
    model, x = aux_net(), torch.randn(1, 3, 8, 8)
    state = copy.deepcopy(model.state_dict())
    graph = ns.trace(model, x)
    assert graph.traced_training and not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # nothing moved
    pruned = ns.prune(model, x, ratio=0.5)
    assert pruned.aux[0].in_channels == pruned.mid[0].out_channels < 24
    pruned.train()(torch.randn(2, 3, 8, 8))  # the first fine-tune step used to crash here
    assert pruning_error(model, graph, random_plan(graph, 0.5, 0), torch.randn(2, 3, 8, 8)) <= 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aux_head_of_the_pruned_model_equals_the_masked_original(seed: int) -> None:
    model, x = aux_net(), torch.randn(2, 3, 8, 8)
    graph = ns.trace(model, x)
    plan = random_plan(graph, 0.5, seed)
    assert pruning_error(model, graph, plan, x, training=True) <= 1e-4  # main and auxiliary outputs


def test_a_layer_nothing_runs_is_named_and_left_as_it_is() -> None:
    model, x = Leftover(), torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match=r"never ran while tracing in eval or train mode: unused"):
        pruned = ns.prune(model, x, ratio=0.5)
    assert pruned.unused.weight.shape == (2, 8) and pruned.conv.out_channels == 4


def test_models_whose_layers_all_run_trace_once_in_eval_mode() -> None:
    model, x = ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = ns.trace(model, x)
    assert not graph.traced_training
    assert unrun_layers(model, graph.builder) == []


@pytest.mark.slow
def test_torchvision_googlenet_with_aux_heads_prunes_trains_saves_and_loads() -> None:
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's note about init_weights
        model = torchvision.models.googlenet(num_classes=10, init_weights=True).eval()
    x = torch.randn(2, 3, 64, 64)
    pruned = ns.prune(model, x, target="macs=0.6")
    assert pruned.aux1.conv.conv.in_channels == pruned.inception4b.branch1.conv.in_channels
    outputs = pruned.train()(x)
    assert [o.shape for o in outputs] == [(2, 10)] * 3
    pruned.eval()
    with tempfile.TemporaryDirectory() as folder:
        ns.save(pruned, folder + "/m")
        loaded = ns.load(folder + "/m")
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


class _Engine(nn.Module):
    """An engine object around a network, as ultralytics' YOLO is: its forward runs a fused copy of the
    network (reading the weights to fuse, calling none of the engine's own layers) and returns plain
    result objects."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> list[object]:
        fused = copy.deepcopy(self.net)
        fused[0].weight.data.mul_(self.net[1].weight.reshape(-1, 1, 1, 1))  # read to fuse
        return [type("Results", (), {"boxes": fused(x).amax()})()]


def test_an_engine_around_a_network_is_refused_naming_the_network_inside() -> None:
    engine = _Engine().eval()
    with pytest.raises(ns.errors.TraceError, match=r"ran none of its own layers.*`\.net` \(Sequential, 276 "):
        ns.trace(engine, torch.rand(1, 3, 8, 8))
    ns.trace(engine.net, torch.rand(1, 3, 8, 8))  # the network itself traces


class _Functional(nn.Module):
    """Layers used only through their weights (``F.conv2d(x, self.a.weight)``), never called."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(F.conv2d(x, self.a.weight, self.a.bias))
        return F.conv2d(h, self.b.weight, self.b.bias)


def test_a_network_that_only_reads_its_layers_weights_is_not_mistaken_for_an_engine() -> None:
    graph = ns.trace(_Functional().eval(), torch.rand(1, 3, 8, 8))
    assert [g.n_prunable for g in graph.groups if g.size == 8] == [8]
