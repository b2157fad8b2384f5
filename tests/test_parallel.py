"""Data-parallel wrappers: saved, measured and exported as the network inside; pruning them is refused.

``nn.DataParallel`` needs no GPU: without CUDA devices it keeps ``device_ids == []`` and its forward calls
the wrapped module directly, so these tests run on any CPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, TraceError
from netsculpt.measure.onnx_runtime import export_onnx


class DistributedDataParallel(nn.Module):
    """A look-alike of apex's / torch's DDP (a real one needs a process group): ``.module`` only."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: object) -> object:
        return self.module(*args)


def _lenet() -> nn.Module:
    torch.manual_seed(0)
    return ns.create_model("lenet5", num_classes=10, in_channels=1)


def test_data_parallel_works_on_cpu_without_devices() -> None:
    net = _lenet()
    wrapped = nn.DataParallel(net)
    x = torch.randn(2, 1, 28, 28)
    assert wrapped.device_ids == [] or torch.cuda.is_available()
    assert torch.equal(wrapped(x), net(x))


@pytest.mark.parametrize("wrap", [nn.DataParallel, DistributedDataParallel])
def test_save_of_a_wrapped_model_saves_the_network_inside(tmp_path, wrap) -> None:
    net = _lenet()
    with pytest.warns(NetsculptWarning, match=r"using model\.module \(the LeNet5 inside it\)"):
        ns.save(wrap(net), tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "netsculpt.json").read_text())
    assert spec["base"]["kind"] == "netsculpt"  # was "user", class DataParallel: unloadable without model=
    loaded = ns.load(tmp_path / "m")
    assert type(loaded) is type(net)
    assert list(loaded.state_dict()) == list(net.state_dict())  # no "module." prefix
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_nested_wrappers_are_all_unwrapped(tmp_path) -> None:
    net = _lenet()
    with pytest.warns(NetsculptWarning, match=r"model\.module\.module "):
        ns.save(nn.DataParallel(DistributedDataParallel(net)), tmp_path / "m")
    assert type(ns.load(tmp_path / "m")) is type(net)


def test_load_onto_a_wrapped_base_model(tmp_path) -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3))
    ns.save(net, tmp_path / "m")  # a Sequential: loading needs model=
    with pytest.warns(NetsculptWarning, match="ns.load"):
        loaded = ns.load(tmp_path / "m", model=nn.DataParallel(net))
    assert type(loaded) is nn.Sequential


def test_measure_and_export_use_the_network_inside(tmp_path) -> None:
    net, x = _lenet(), torch.randn(1, 1, 28, 28)
    with pytest.warns(NetsculptWarning, match="ns.measure"):
        metrics = ns.measure(nn.DataParallel(net), x, latency=False)
    assert [layer.name for layer in metrics.layers] == [
        layer.name for layer in ns.measure(net, x, latency=False).layers
    ]
    assert not any(layer.name.startswith("module") for layer in metrics.layers)
    with pytest.warns(NetsculptWarning, match="export_onnx"):
        path = export_onnx(nn.DataParallel(net), x, tmp_path / "m.onnx")  # both exporters refused it
    assert path.is_file()


@pytest.mark.parametrize("wrap", [nn.DataParallel, DistributedDataParallel])
def test_pruning_a_wrapper_is_refused_naming_model_module(wrap) -> None:
    model, x = wrap(_lenet()), torch.randn(1, 1, 28, 28)
    for call in (lambda: ns.prune(model, x, ratio=0.5), lambda: ns.trace(model, x)):
        with pytest.raises(TraceError, match=r"pass model\.module, then wrap the pruned model"):
            call()


def test_a_model_with_a_child_called_module_is_not_a_wrapper() -> None:
    from netsculpt.parallel import parallel_wrapper

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module, self.head = nn.Linear(2, 2), nn.Linear(2, 1)

    assert parallel_wrapper(Net()) is None
    assert parallel_wrapper(nn.DataParallel(Net())) == "DataParallel"
