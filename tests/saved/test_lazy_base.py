"""A zoo model whose builder uses lazy layers (sized by the first input) saves and loads, plain or pruned.

Before: its base shapes were recorded when built (none yet), and loading rebuilt it shapeless, which the
size check met with torch's raw "uninitialized parameter" ValueError. Now the shapes are taken once it
has run, unedited, and the rebuilt base's lazy layers are sized from them before the edits replay."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.models import MODELS, register_model

X = torch.randn(2, 1, 12, 12)


def lazy_net(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.LazyConv2d(8, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.LazyLinear(num_classes),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _registered(monkeypatch) -> None:
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # restored after the test
    register_model("test_lazy_base", input_shape=(1, 12, 12), num_classes=3, in_channels=1)(lazy_net)


def _built() -> nn.Module:
    model = ns.create_model("test_lazy_base")
    model.train()(X)  # materialised, batch-norm statistics moved
    return model.eval()


@pytest.mark.parametrize("pruned", [False, True])
def test_a_lazy_zoo_model_loads_as_saved(pruned: bool, tmp_path) -> None:
    model = _built()
    if pruned:
        model = ns.prune(model, X, ratio=0.5)
    ns.save(model, tmp_path / "m")
    again = ns.load(tmp_path / "m")
    assert torch.equal(again(X), model(X))
    assert again[-1].weight.shape == model[-1].weight.shape


def test_a_lazy_layer_without_a_saved_shape_is_refused(tmp_path) -> None:
    ns.save(_built(), tmp_path / "m")
    document = json.loads((tmp_path / "m" / "netsculpt.json").read_text())
    assert document["base_shapes"]["6.weight"] == [3, 6 * 4 * 4]  # (12 - 2 - 3) // 2 + 1 = 4
    del document["base_shapes"]["6.weight"]
    (tmp_path / "m" / "netsculpt.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"lazy layer '6' \(LazyLinear\) has no saved shape"):
        ns.load(tmp_path / "m")


def test_a_lazy_zoo_model_takes_a_state_dict_checkpoint(tmp_path) -> None:
    """ns.create_model(checkpoint=...) sizes the lazy layers from the file (before: torch's raw "Can't access
    the shape of an uninitialized parameter" RuntimeError from the key and shape check)."""
    model = _built()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = ns.create_model("test_lazy_base", checkpoint=tmp_path / "w.pt").eval()
    assert torch.equal(again(X), model(X)) and again[-1].in_features == 6 * 4 * 4
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("6.")}
    torch.save(state, tmp_path / "headless.pt")
    with pytest.raises(CheckpointError, match=r"lazy layer '6' \(LazyLinear\) has no saved shape.*run once"):
        ns.create_model("test_lazy_base", checkpoint=tmp_path / "headless.pt")
