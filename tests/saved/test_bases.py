"""Bases of saved models: a model added with ``register_model`` in the user's own module reloads in a
process that has not imported it only with the user's consent (``trust_builder``), never by itself."""

from __future__ import annotations

import sys

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.models import MODELS, create_model

MODULE = """
from torch import nn
from netsculpt.models import register_model


def build(num_classes: int, in_channels: int, width: int = 16) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


if REGISTER:
    register_model("ns_test_tiny_cnn", input_shape=(3, 16, 16), num_classes=10, in_channels=3)(build)
"""


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """A pruned ``ns_test_tiny_cnn`` saved, then the registry and module as a new process has them."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    for name, register in (("ns_test_registers", True), ("ns_test_builds_only", False)):
        (tmp_path / f"{name}.py").write_text(MODULE.replace("REGISTER", str(register)))
    monkeypatch.syspath_prepend(str(tmp_path))
    import ns_test_registers  # noqa: F401  (registers the model)

    model = ns.prune(create_model("ns_test_tiny_cnn", width=12), torch.randn(1, 3, 16, 16), ratio=0.5)
    ns.save(model, tmp_path / "model")
    MODELS._entries.pop("ns_test_tiny_cnn")
    for name in ("ns_test_registers", "ns_test_builds_only"):
        sys.modules.pop(name, None)
    yield tmp_path / "model", model
    for name in ("ns_test_registers", "ns_test_builds_only"):
        sys.modules.pop(name, None)


def test_an_unregistered_zoo_base_says_how_to_load_it(saved) -> None:
    folder, _ = saved
    with pytest.raises(CheckpointError, match=r"'ns_test_tiny_cnn' is not a registered model") as err:
        ns.load(folder)
    assert "import it before netsculpt.load" in str(err.value)
    assert "trust_builder='package.module:ns_test_tiny_cnn'" in str(err.value) and "model=" in str(err.value)
    assert "ns_test_registers" not in sys.modules  # nothing of the user's was imported


@pytest.mark.parametrize("module", ["ns_test_registers", "ns_test_builds_only"])
def test_the_named_builder_rebuilds_an_unregistered_zoo_base(saved, module) -> None:
    """Either the named module registers the name when imported (the registry then builds it, with the
    saved options), or its builder is called with them (num_classes, in_channels, width=12)."""
    folder, model = saved
    loaded = ns.load(folder, trust_builder=f"{module}:build")
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(loaded.eval()(x), model.eval()(x))
