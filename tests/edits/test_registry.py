"""The edit registry: a new kind is one registration, validated before and replayed on load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.edits import EDITS, EditKind, register_edit
from netsculpt.errors import CheckpointError
from netsculpt.spec import append_step, ensure_base


def _drop_module(model: nn.Module, edit: dict) -> nn.Module:
    """A toy kind: replace a named module with Identity (what block removal will record)."""
    parent, _, attr = edit["module"].rpartition(".")
    setattr(model.get_submodule(parent), attr, nn.Identity())
    append_step(model, edit)
    return model


KIND = EditKind(
    "test_drop_module",
    schema={"properties": {"module": {"type": "string", "minLength": 1}}, "required": ["module"]},
    replay=_drop_module,
)


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_edit(KIND, overwrite=True)
    yield


def test_builtin_kinds_are_registered() -> None:
    assert {"prune", "factorise"} <= set(EDITS.names())


def test_a_registered_kind_is_saved_validated_and_replayed(tmp_path) -> None:
    model = ns.create_model("resnet20_cifar").eval()
    ensure_base(model)
    _drop_module(model, {"kind": "test_drop_module", "module": "layer3.2"})
    x = torch.randn(1, 3, 32, 32)
    ns.save(model, tmp_path)
    assert json.loads((tmp_path / "netsculpt.json").read_text())["edits"][-1]["module"] == "layer3.2"
    loaded = ns.load(tmp_path)
    assert isinstance(loaded.layer3[2], nn.Identity) and torch.equal(loaded(x), model(x))
    data = json.loads((tmp_path / "netsculpt.json").read_text())
    data["edits"][-1]["module"] = 7
    (tmp_path / "netsculpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"edits\[0\]\.module: 7 is not of type 'string'"):
        ns.load(tmp_path)


def test_a_replay_failure_names_the_edit(tmp_path) -> None:
    model = ns.create_model("lenet5")
    ensure_base(model)
    append_step(model, {"kind": "test_drop_module", "module": "no.such.layer"})
    ns.save(model, tmp_path)
    with pytest.raises(CheckpointError, match=r"edits\[0\] \(test_drop_module\) does not fit"):
        ns.load(tmp_path)
