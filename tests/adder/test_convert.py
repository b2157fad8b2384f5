"""to_adder: which convs convert, BN placement, the saved edit and its round trip through ns.load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.adder import AdderConv2d, count_ops, to_adder
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.spec import model_spec


def _adders(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, AdderConv2d)]


def test_lenet5_keeps_its_first_conv_and_adds_bn() -> None:
    cnn = ns.create_model("lenet5")
    ann = to_adder(cnn)
    assert isinstance(ann.conv1, nn.Conv2d) and not isinstance(ann.conv1, AdderConv2d)
    assert isinstance(ann.conv2, nn.Sequential) and isinstance(ann.conv2[1], nn.BatchNorm2d)
    assert _adders(ann) == ["conv2.0"]
    assert not _adders(cnn) and model_spec(cnn)["edits"] == []  # the user's model is untouched
    assert model_spec(ann)["edits"][-1] == {
        "kind": "adder",
        "eta": 0.2,
        "layers": [{"name": "conv2", "bn": True}],
    }


def test_resnet_convs_that_feed_a_bn_keep_it() -> None:
    ann = to_adder(ns.create_model("resnet20_cifar"))
    layers = model_spec(ann)["edits"][-1]["layers"]
    assert len(layers) == 20 and not any(layer["bn"] for layer in layers)  # 19 + 2 shortcut convs, first kept
    assert isinstance(ann.layer1[0].conv1, AdderConv2d)


def test_a_torchvision_model_converts_and_runs() -> None:
    torchvision = pytest.importorskip("torchvision")
    ann = to_adder(torchvision.models.resnet18(num_classes=10), keep=["first", "last", "layer4"])
    assert "layer1.0.conv1" in _adders(ann) and not any(n.startswith("layer4") for n in _adders(ann))
    assert ann.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_save_load_round_trip_is_bitwise(tmp_path) -> None:
    torch.manual_seed(0)
    ann = to_adder(ns.create_model("lenet5"))
    ann.train()(torch.randn(8, 1, 28, 28))  # move the BN statistics off their defaults
    ann.eval()
    ns.save(ann, tmp_path)
    assert json.loads((tmp_path / "netsculpt.json").read_text())["edits"][-1]["kind"] == "adder"
    loaded = ns.load(tmp_path).eval()
    x = torch.randn(3, 1, 28, 28)
    assert _adders(loaded) == ["conv2.0"] and torch.equal(loaded(x), ann(x))
    for key, value in ann.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_a_bad_saved_adder_edit_is_refused(tmp_path) -> None:
    ns.save(to_adder(ns.create_model("lenet5")), tmp_path)
    doc = json.loads((tmp_path / "netsculpt.json").read_text())
    doc["edits"][-1]["layers"][0]["name"] = "fc1"  # a Linear: not convertible
    (tmp_path / "netsculpt.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="fc1"):
        ns.load(tmp_path)


def test_bad_keep_and_nothing_to_convert_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="conv9"):
        to_adder(ns.create_model("lenet5"), keep=["conv9"])
    with pytest.raises(ConfigError, match="no Conv2d"):
        to_adder(ns.create_model("lenet5"), keep=["conv1", "conv2"])


def test_op_counts_of_lenet5() -> None:
    """By hand: conv1 25*20*24*24, conv2 500*50*8*8, fc1 800*500, fc2 500*10 multiply-accumulates."""
    x = torch.randn(1, 1, 28, 28)
    macs = 25 * 20 * 24 * 24 + 500 * 50 * 8 * 8 + 800 * 500 + 500 * 10
    cnn = ns.create_model("lenet5")
    assert count_ops(cnn, x).mults == macs == count_ops(cnn, x).adds
    ann_ops = count_ops(to_adder(cnn), x)
    assert ann_ops.mults == macs - 500 * 50 * 8 * 8 and ann_ops.adds == macs + 500 * 50 * 8 * 8
    assert ann_ops.energy_uj() < count_ops(cnn, x).energy_uj()  # 3.7 pJ mult vs 2 x 0.9 pJ adds


def test_op_counts_of_1d_3d_transposed_convs_and_several_inputs() -> None:
    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv1d(2, 4, 3)  # 2*3 per output, 4 x 8 outputs
            self.c3 = torch.nn.Conv3d(1, 2, 2)  # 1*8 per output, 2 x 3*3*3 outputs
            self.up = torch.nn.ConvTranspose2d(2, 3, 2, stride=2)  # each of 2*4*4 inputs scatters 3*2*2

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.c1(a).sum() + self.c3(b).sum() + self.up(b[:, 0, :2]).sum()

    macs = 6 * 32 + 8 * 54 + 12 * 32
    a, b = torch.randn(3, 2, 10), torch.randn(3, 1, 4, 4, 4)
    assert count_ops(TwoInputs(), (a, b)).mults == macs
    assert count_ops(TwoInputs(), {"a": a, "b": b}).adds == macs


def test_copy_filters_starts_the_adders_from_the_convs_and_fresh_init_does_not() -> None:
    torch.manual_seed(0)
    cnn = ns.create_model("lenet5")
    shared = to_adder(cnn, copy_filters=True)
    assert torch.equal(shared.conv2[0].weight, cnn.conv2.weight)
    assert not torch.equal(to_adder(cnn).conv2[0].weight, cnn.conv2.weight)
    assert model_spec(shared)["edits"][-1] == model_spec(to_adder(cnn))["edits"][-1]  # same saved edit


class _SharedConv(torch.nn.Module):
    """One conv registered under two names (weight sharing by aliasing)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.a = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.b = self.a
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(self.stem(x)).relu()).mean((2, 3)))


def test_a_conv_registered_twice_becomes_one_shared_adder_layer(tmp_path) -> None:
    torch.manual_seed(0)
    ann = to_adder(_SharedConv(), keep=["first", "last"])
    assert ann.a is ann.b and not any(
        type(m) is torch.nn.Conv2d for n, m in ann.named_modules() if n != "stem"
    )
    x = torch.randn(2, 1, 6, 6)
    ns.save(ann, tmp_path / "m")
    again = ns.load(tmp_path / "m", model=_SharedConv())
    assert again.a is again.b
    with torch.no_grad():
        assert torch.equal(again.eval()(x), ann.eval()(x))


def test_keep_none_keeps_no_layer() -> None:
    # keep=None raised "'NoneType' object is not iterable"; it now means the same as keep=[]
    cnn = ns.create_model("lenet5")
    assert _adders(to_adder(cnn, keep=None)) == _adders(to_adder(cnn, keep=[])) == ["conv1.0", "conv2.0"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": 3}, r"keep= takes 'first', 'last', module names \(one or a list\) or None; got 3 \(int\)"),
        ({"keep": ["first", 3]}, r"keep= takes 'first', 'last', module names"),
        ({"eta": None}, r"eta= takes a number; got None"),
        ({"eta": "0.2"}, r"eta= takes a number; got '0.2' \(str\)"),
        ({"copy_filters": "yes"}, r"copy_filters= takes True or False"),
    ],
)
def test_wrong_argument_types_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"ns.to_adder: {message}"):
        to_adder(ns.create_model("lenet5"), **kwargs)
    with pytest.raises(ConfigError, match=r"ns.to_adder: model= takes a torch.nn.Module"):
        to_adder(None)
