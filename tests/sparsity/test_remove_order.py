"""Removing masks leaves the state dict in the model's own order, so a half-sparse model saves and loads."""

from __future__ import annotations

import torch

import netsculpt as ns
from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_


def test_state_dict_order_survives_and_a_mostly_dense_layer_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    order = list(model.state_dict())
    with torch.no_grad():
        model.conv1.weight.mul_(10)  # one global threshold then leaves conv1 almost dense: stored dense
    remove_masks_(mask_layers_(model, SparsityConfig(0.9, scope="global"), 0.9) and model)
    assert list(model.state_dict()) == order
    assert (
        float((model.conv1.weight == 0).float().mean()) < 0.25 < float((model.fc1.weight == 0).float().mean())
    )
    ns.save(model, tmp_path)
    loaded = ns.load(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
