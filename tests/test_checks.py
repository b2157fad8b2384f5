"""The shared argument checks: what each accepts, and that a refusal names the argument and the value."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from netsculpt import checks
from netsculpt.errors import ConfigError, PruningError, TraceError


def test_whole_numbers_take_any_integer_type_but_not_bools_floats_or_strings() -> None:
    assert checks.whole(3, "steps") == 3 and checks.whole(np.int64(2), "steps") == 2
    assert checks.whole(0, "warmup", minimum=0) == 0
    for bad in (1.5, 2.0, "2", True, None, 0):
        with pytest.raises(
            ConfigError, match=rf"steps= takes a whole number >= 1; got {re.escape(repr(bad))}"
        ):
            checks.whole(bad, "steps")


def test_wholes_reads_one_number_as_a_list_and_refuses_a_string() -> None:
    assert checks.wholes(4, "batch_sizes") == [4]
    assert checks.wholes((1, np.int32(8)), "batch_sizes") == [1, 8]
    # "16" iterated is "1", "6": refused rather than timed at batches 1 and 6
    for bad in ("16", None, [1.5], ["a"], {1: 2}, [0]):
        with pytest.raises(ConfigError, match="batch_sizes= takes a whole number >= 1 or a list of them"):
            checks.wholes(bad, "batch_sizes")


def test_flags_names_paths_and_modules() -> None:
    assert checks.flag(np.bool_(True), "onnx") is True
    with pytest.raises(PruningError, match=r"ns.fold: convs= takes True or False; got 'no' \(str\)"):
        checks.flag("no", "convs", "ns.fold", PruningError)
    assert checks.names(None, "keep") == [] and checks.names("conv1", "keep") == ["conv1"]
    assert checks.names(("a", "b"), "keep") == ["a", "b"]
    with pytest.raises(ConfigError, match=r"keep= takes a name or a list of names; got 3 \(int\)"):
        checks.names(3, "keep")
    assert checks.path("out/m", "directory") == Path("out/m")
    with pytest.raises(ConfigError, match=r"directory= takes a path .*; got None \(NoneType\)"):
        checks.path(None, "directory")
    with pytest.raises(ConfigError, match=r"model= takes a torch.nn.Module .*; got 'lenet5' \(str\)"):
        checks.module("lenet5")
    assert isinstance(checks.module(nn.ReLU()), nn.ReLU)


def test_long_values_are_cut_short_in_messages() -> None:
    assert checks.shown(list(range(100))).endswith("... (list)")
    assert len(checks.shown(list(range(100)))) < 80


class _LazyNet(nn.Module):
    """A user's model built with lazy layers, as Torch-Pruning users write them: shapes come from the
    first input. The batch norm is lazy too, so the model holds uninitialised buffers as well."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn = nn.LazyConv2d(8, 3, padding=1), nn.LazyBatchNorm2d()
        self.conv2, self.fc = nn.Conv2d(8, 16, 3, padding=1), nn.LazyLinear(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def _lazy_calls(x: torch.Tensor, tmp: Path) -> dict[str, tuple[object, type, str]]:
    import netsculpt as ns
    from netsculpt.measure import count_macs, measure_latency, peak_activation_bytes

    return {
        "ns.trace": (lambda m: ns.trace(m, x), TraceError, "cannot trace _LazyNet"),
        "ns.prune": (lambda m: ns.prune(m, x, ratio=0.5), PruningError, "cannot prune _LazyNet"),
        "ns.plan_pruning": (lambda m: ns.plan_pruning(m, x, ratio=0.5), PruningError, "cannot prune"),
        "ns.save": (lambda m: ns.save(m, tmp / "lazy"), ConfigError, "cannot save _LazyNet"),
        "ns.measure": (lambda m: ns.measure(m, x, latency=False), ConfigError, "cannot measure"),
        "count_macs": (lambda m: count_macs(m, x), ConfigError, "cannot count the MACs of"),
        "peak_activation_bytes": (lambda m: peak_activation_bytes(m, x), ConfigError, "activation memory"),
        "measure_latency": (lambda m: measure_latency(m, x, runs=1, warmup=0), ConfigError, "cannot time"),
    }


@pytest.mark.parametrize("call", list(_lazy_calls(torch.zeros(1), Path())))
def test_unmaterialised_lazy_layers_are_refused_and_the_model_is_left_lazy(call: str, tmp_path: Path) -> None:
    """Before: torch's raw "uninitialized parameter" ValueError; without lazy buffers ns.trace / ns.prune
    materialised the user's model silently (random weights, the global generator moved) and
    peak_activation_bytes / measure_latency did so and then blamed the forward for writing parameters."""
    x = torch.randn(2, 3, 8, 8)
    fn, error, words = _lazy_calls(x, tmp_path)[call]
    model = _LazyNet()
    rng = torch.get_rng_state()
    with pytest.raises(error, match=rf"{words}.*lazy layers have no shapes yet \(conv1\.weight, conv1\.bias"):
        fn(model)
    with pytest.raises(
        error, match=r"run it once on an input \(model\(example\)\) to materialise them, then"
    ):
        fn(model)
    assert [type(m).__name__ for m in model.modules()] == [
        "_LazyNet",
        "LazyConv2d",
        "LazyBatchNorm2d",
        "Conv2d",
        "LazyLinear",
    ]
    assert torch.equal(torch.get_rng_state(), rng)  # no weight was drawn
    assert not (tmp_path / "lazy").exists()
    model(x)  # materialised by the user: the model works as any other (next test)


def test_a_materialised_lazy_model_traces_prunes_saves_and_loads(tmp_path: Path) -> None:
    import netsculpt as ns

    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    model = _LazyNet()
    model(x)
    model.eval()
    assert ns.trace(model, x).prunable_groups
    small = ns.prune(model, x, ratio=0.5)
    assert small.conv1.out_channels == 4 and small(x).shape == (2, 4)
    ns.save(small, tmp_path / "small")
    # a fresh lazy model takes the saved shapes (tests/saved/test_lazy_onto.py); a materialised one works too
    base = _LazyNet()
    base(x)
    again = ns.load(tmp_path / "small", model=base).eval()
    assert torch.equal(again(x), small(x))


def test_a_lazy_model_without_lazy_buffers_is_not_materialised_by_a_trace() -> None:
    """Without lazy buffers nothing failed: ns.trace ran the forward and left the user's layers as
    Conv2d / Linear holding weights drawn from the global generator, a model the user never built."""
    import netsculpt as ns

    model = nn.Sequential(nn.LazyConv2d(8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(TraceError, match=r"cannot trace Sequential: its lazy layers"):
        ns.trace(model, torch.randn(1, 3, 8, 8))
    assert isinstance(model[0], nn.LazyConv2d) and isinstance(model[3], nn.LazyLinear)
