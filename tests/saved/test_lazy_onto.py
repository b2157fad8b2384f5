"""``ns.load(d, model=LazyNet())``: the user's builder gives a model whose lazy layers have seen no input.

Before 2026-12-07 load refused it ("run it once on an input"), although the file records every shape
the lazy layers need. Now a copy is sized from the saved base shapes by each layer's own
``initialize_parameters`` (no forward on a made-up input), the edits replay and the weights load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.saved.bases import shaped_
from tests._lazy import LazyNet, X, lazy_names, materialised_lazy_net


@pytest.mark.parametrize("pruned", [False, True])
def test_a_fresh_lazy_model_takes_the_saved_shapes(pruned: bool, tmp_path) -> None:
    model = materialised_lazy_net().eval()
    if pruned:
        model = ns.prune(model, X, ratio=0.5)
    ns.save(model, tmp_path / "m")
    fresh, rng = LazyNet(), torch.get_rng_state()
    again = ns.load(tmp_path / "m", model=fresh)
    assert torch.equal(again(X), model(X))
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert (again.conv1.in_channels, again.fc.in_features) == (3, model.fc.in_features)
    assert lazy_names(fresh) == ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]  # copied, not changed
    assert torch.equal(torch.get_rng_state(), rng)  # no weight drawn from the user's generator


def test_a_lazy_layer_without_a_saved_shape_is_still_refused(tmp_path) -> None:
    ns.save(materialised_lazy_net().eval(), tmp_path / "m")
    spec = tmp_path / "m" / "netsculpt.json"
    document = json.loads(spec.read_text())
    del document["base_shapes"]["fc.weight"]
    spec.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"lazy layer 'fc' \(LazyLinear\) has no saved .*run it once"):
        ns.load(tmp_path / "m", model=LazyNet())
    document["base_shapes"] = None  # a file older than recorded base shapes
    spec.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=r"cannot load a saved model onto LazyNet: .* run it once"):
        ns.load(tmp_path / "m", model=LazyNet())


class _LazyScale(LazyModuleMixin, nn.Module):
    """A lazy class of the user's own: netsculpt cannot tell what input would size it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = UninitializedParameter()

    def initialize_parameters(self, x: torch.Tensor) -> None:
        if self.has_uninitialized_params():
            self.scale.materialize(x.shape[1:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


def test_a_lazy_class_netsculpt_does_not_know_takes_the_saved_shape_through_torchs_load_hook() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 1), _LazyScale())
    shaped_(model, {"1.scale": [8]}, "here")
    assert model[1].scale.shape == (8,) and not lazy_names(model)
    with pytest.raises(CheckpointError, match=r"here: .* lazy layer '1' \(_LazyScale\) has no saved"):
        shaped_(nn.Sequential(nn.Conv2d(3, 8, 1), _LazyScale()), {}, "here")
