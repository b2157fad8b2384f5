"""Tracing leaves nothing of netsculpt in the model: what forward wrote is undone (graph/snapshot.py)."""

from __future__ import annotations

import copy
import pickle
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.graph.sizes import ChannelCount
from tests.graph.archs import cbr, randomize_


class ShapeCachingHead(nn.Module):
    """Like ultralytics' ``Detect``: caches the input's shape and grid tensors built from it on itself."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = cbr(3, 8), nn.Conv2d(8, 6, 1)
        self.shape: torch.Size | None = None
        self.anchors = torch.empty(0)
        self.seen: list[object] = []
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        shape = x.shape
        if self.shape != shape:
            h, w = shape[2], shape[3]
            self.anchors = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
            self.shape = shape
        self.seen.append(shape[1])  # a container the module owns, appended to in forward
        self.cache = {"channels": x.size(1)}  # an attribute that did not exist before
        self.calls += 1  # a buffer written in place
        return self.head(x) + self.anchors.sum()


def test_trace_leaves_the_model_as_it_was() -> None:
    model, x = randomize_(ShapeCachingHead()), torch.randn(1, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs, seen = dict(vars(model)), model.seen
    model.train()
    model.stem.eval()  # a submodule deliberately in another mode keeps it
    graph = ns.trace(model, x)
    assert graph.prunable_groups
    assert model.shape is None and model.anchors.numel() == 0 and not hasattr(model, "cache")
    assert model.seen == []  # appended to in forward: emptied again (it kept a plain 8 before 2026-12-07)
    assert model.training and not model.stem.training
    assert set(vars(model)) == set(attrs) and model.seen is seen
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    copy.deepcopy(model)
    pickle.loads(pickle.dumps(model))
    small = ns.prune(model.eval(), x, ratio=0.5)
    assert small(x).shape == model(x).shape


def test_counts_copy_and_pickle_as_plain_ints() -> None:
    count = ChannelCount(8, value_id=3, dim=1)
    size = torch.Size([1, count, 4])
    for out in (copy.copy(count), copy.deepcopy(count), pickle.loads(pickle.dumps(count))):
        assert type(out) is int and out == 8
    assert [type(n) for n in copy.deepcopy(size)] == [int, int, int]
    assert b"netsculpt" not in pickle.dumps(size)


class CachingPool(nn.Module):
    """Like torchvision's ``MultiScaleRoIAlign``: the first forward sets ``scales`` (None before) from the
    feature size it sees, and this one also counts calls in a buffer and keeps the last shape."""

    def __init__(self) -> None:
        super().__init__()
        self.scales: list[float] | None = None
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scales is None:
            self.scales = [1.0 / x.shape[-1]]
        self.last_shape = x.shape  # an attribute that did not exist before
        self.calls += 1
        return x.mean((2, 3))


class PooledNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*cbr(3, 8), nn.Conv2d(8, 8, 3, padding=1))
        self.pool, self.fc = CachingPool(), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(x)))


_REGISTERED = ("_parameters", "_buffers", "_modules")


def module_state(model: nn.Module) -> dict[str, tuple[dict, dict, dict]]:
    """Every submodule's plain attributes (by identity, the train flag among them), its registered
    parameters and submodules (by identity) and its buffers' values."""
    return {
        name: (
            {k: v for k, v in vars(m).items() if k not in _REGISTERED},
            {**m._parameters, **m._modules},
            {k: b.clone() for k, b in m._buffers.items() if b is not None},
        )
        for name, m in model.named_modules()
    }


def assert_unchanged(model: nn.Module, before: dict[str, tuple[dict, dict, dict]], call: str) -> None:
    after = module_state(model)
    assert after.keys() == before.keys(), call
    for name, (attrs, registered, buffers) in before.items():
        now_attrs, now_registered, now_buffers = after[name]
        assert now_attrs.keys() == attrs.keys(), (call, name, set(now_attrs) ^ set(attrs))
        assert all(now_attrs[k] is v for k, v in attrs.items()), (call, name)
        assert now_registered.keys() == registered.keys(), (call, name)
        assert all(now_registered[k] is v for k, v in registered.items()), (call, name)
        assert now_buffers.keys() == buffers.keys(), (call, name)
        assert all(torch.equal(now_buffers[k], b) for k, b in buffers.items()), (call, name)


def _leave_calls(x: object, target: ns.Target) -> dict[str, object]:
    from netsculpt.measure import count_macs, measure_latency, peak_activation_bytes

    return {
        "ns.measure": lambda m: ns.measure(m, x, latency=False),
        "count_macs": lambda m: count_macs(m, x),
        "peak_activation_bytes": lambda m: peak_activation_bytes(m, x),
        "measure_latency": lambda m: measure_latency(m, x, runs=1, warmup=0),
        "ns.plan_pruning(target=)": lambda m: ns.plan_pruning(m, x, target=target),
        "ns.prune(target=)": lambda m: ns.prune(m, x, target=target),
    }


@pytest.mark.filterwarnings("ignore:target macs=0.500 lands")
@pytest.mark.parametrize("call", list(_leave_calls(None, ns.Target(macs=0.5))))
def test_measuring_and_pruning_to_a_target_leave_the_model_as_it_was(call: str) -> None:
    # before: each call left scales, last_shape and calls behind in the user's model
    x = torch.randn(1, 3, 8, 8)
    model = randomize_(PooledNet())
    model.train()
    model.body.eval()  # a submodule in another mode keeps it
    before = module_state(model)
    _leave_calls(x, ns.Target(macs=0.5))[call](model)
    assert model.pool.scales is None and not hasattr(model.pool, "last_shape")
    assert model.pool.calls.item() == 0 and model.training and not model.body.training
    assert_unchanged(model, before, call)


@pytest.mark.slow
def test_a_torchvision_detector_keeps_its_roi_pool_scales_unset() -> None:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    x = ([torch.rand(3, 96, 96)],)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=96, max_size=96
    ).eval()
    calls = _leave_calls(x, ns.Target(macs=0.5))
    for call in ("ns.measure", "count_macs", "ns.prune(target=)"):
        before = module_state(model)
        calls[call](model)
        assert model.roi_heads.box_roi_pool.scales is None, call  # [0.03125, 0.03125] before the fix
        assert_unchanged(model, before, call)


class Remembering(nn.Module):
    """Keeps a history in containers it already owns and mutates them in place in forward: a list, a dict,
    a set and a list nested in a dict, as users write for logging or caching."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*cbr(3, 8), nn.Conv2d(8, 8, 3, padding=1))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 4)
        self.history: list[object] = ["start"]
        self.cache: dict[str, object] = {"size": 0}
        self.tags: set[str] = {"built"}
        self.log: dict[str, list[object]] = {"shapes": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        self.history.append(x.shape[1])
        self.cache["size"] = x.size(1)
        self.cache["last"] = x.shape
        self.tags.add("ran")
        self.log["shapes"].append(tuple(x.shape))
        return self.fc(self.pool(x).flatten(1))


def _contents(model: Remembering) -> tuple:
    return (list(model.history), dict(model.cache), set(model.tags), list(model.log["shapes"]))


@pytest.mark.parametrize("call", ["ns.trace", *_leave_calls(None, ns.Target(macs=0.5))])
def test_in_place_changes_to_existing_containers_are_undone(call: str) -> None:
    """Before: the appended channel counts, the new dict keys, the set member and the nested append all
    stayed in the user's model after a trace, a measurement or a prune."""
    x = torch.randn(1, 3, 8, 8)
    model = randomize_(Remembering()).eval()
    ids = [id(model.history), id(model.cache), id(model.tags), id(model.log), id(model.log["shapes"])]
    before = _contents(model)
    calls = {"ns.trace": lambda m: ns.trace(m, x), **_leave_calls(x, ns.Target(macs=0.5))}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="target macs=0.500 lands")
        calls[call](model)
    assert _contents(model) == before, call
    assert [id(model.history), id(model.cache), id(model.tags), id(model.log), id(model.log["shapes"])] == ids
    pickle.loads(pickle.dumps(model))  # nothing of netsculpt left inside
    model(x)  # the model's own forward still records as it did
    assert model.history == ["start", 8] and model.tags == {"built", "ran"}


@dataclass
class _Counter:
    calls: int = 0
    last: object = None


class _Settings:
    """A plain class of the user's own (not a dataclass)."""

    def __init__(self) -> None:
        self.scale = 1.0


class KeepsState(nn.Module):
    """Writes into plain objects it holds, as users do for counters, settings and debugging state: a
    dataclass, a SimpleNamespace with another nested inside it (holding a list), and a plain class."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*cbr(3, 8), nn.Conv2d(8, 8, 3, padding=1))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 4)
        self.cfg, self.settings = _Counter(), _Settings()
        self.state = SimpleNamespace(last=None, inner=SimpleNamespace(seen=[]))
        self.state.me = self.state  # a cycle
        self.kind, self.helper = _Counter, torch.relu  # a class and a function: held, never walked into

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        self.cfg.calls += 1
        self.cfg.last = x.shape
        self.state.last = x
        self.state.inner.seen.append(x.size(1))
        self.state.inner.added = True  # an attribute that did not exist before
        self.settings.scale = x.shape[1] / 8
        return self.fc(self.pool(x).flatten(1))


def _object_state(model: KeepsState) -> list[dict]:
    objects = (model.cfg, model.settings, model.state, model.state.inner)
    return [dict(vars(o)) for o in objects] + [{"seen": list(model.state.inner.seen)}]


@pytest.mark.parametrize("call", ["ns.trace", "ns.measure", "ns.prune(target=)"])
def test_attribute_changes_inside_plain_objects_are_undone(call: str) -> None:
    """Before: the forward's counts, shapes, tensors and new attributes stayed in the user's dataclass,
    SimpleNamespace and plain objects after a trace, a measurement or a prune."""
    x = torch.randn(1, 3, 8, 8)
    model = randomize_(KeepsState()).eval()
    ids = [id(model.cfg), id(model.state), id(model.state.inner), id(vars(model.state.inner))]
    before = _object_state(model)
    calls = {"ns.trace": lambda m: ns.trace(m, x), **_leave_calls(x, ns.Target(macs=0.5))}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="target macs=0.500 lands")
        calls[call](model)
    after = _object_state(model)
    assert [d.keys() for d in after] == [d.keys() for d in before], call
    assert all(a[k] is b[k] or a[k] == b[k] for a, b in zip(after, before) for k in b), call
    assert model.cfg == _Counter() and model.settings.scale == 1.0 and model.state.last is None
    assert [id(model.cfg), id(model.state), id(model.state.inner), id(vars(model.state.inner))] == ids
    assert model.kind is _Counter and model.helper is torch.relu and model.state.me is model.state
    assert b"netsculpt" not in pickle.dumps(model)
    model(x)  # the model's own forward still records as it did
    assert model.cfg.calls == 1 and model.state.inner.seen == [8]


class LazyRecorder(nn.Module):
    """Like transformers 5's ``capture_outputs``: the first forward hooks every stage to record its output
    and sets a flag saying the hooks are installed; the head reads the recorded outputs in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([cbr(3, 8), cbr(8, 16)])
        self.heads = nn.ModuleList([nn.Conv2d(8, 4, 1), nn.Conv2d(16, 4, 1)])
        self.recorded: list[torch.Tensor] | None = None

    def _record(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.recorded.append(output)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not getattr(self, "_hooks_installed", False):
            for stage in self.stages:
                stage.register_forward_hook(self._record)
            self._hooks_installed = True
        self.recorded = []
        for stage in self.stages:
            x = stage(x)
        recorded, self.recorded = self.recorded, None
        return sum(head(f).mean((2, 3)) for f, head in zip(recorded, self.heads, strict=True))


def test_hooks_a_forward_installs_are_removed_with_its_flag() -> None:
    """The flag was removed and the hooks kept: the next forward hooked every stage twice and recorded
    [s0, s0, s1, s1], so the traced model itself no longer ran (HF SegFormer, until 2026-12-07)."""
    model, x = randomize_(LazyRecorder()).eval(), torch.randn(2, 3, 8, 8)
    graph = ns.trace(model, x)
    assert graph.prunable_groups
    assert all(not s._forward_hooks for s in model.stages) and not hasattr(model, "_hooks_installed")
    out = model(x)  # before: stage 0 output fed to heads[1] ("expected ... 16 channels, but got 8")
    assert [len(s._forward_hooks) for s in model.stages] == [1, 1]
    ns.trace(model, x)  # hooks that were there before the trace stay
    assert [len(s._forward_hooks) for s in model.stages] == [1, 1]
    assert torch.allclose(model(x), out)
    small = ns.prune(model, x, ratio=0.5)
    assert small(x).shape == out.shape
