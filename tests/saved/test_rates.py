"""Dropout and drop-path rates survive ns.save / ns.load: the loaded model trains like the saved one.

Train-mode outputs are compared under the same seed: equal outputs need equal rates in every dropout,
stochastic-depth and drop-path layer (and, for timm, the model-level ``drop_rate``).
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import CheckpointError, NetsculptWarning


def _same_in_train_and_eval(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    for train in (False, True):
        a.train(train)
        b.train(train)
        torch.manual_seed(7)
        out_a = a(x)
        torch.manual_seed(7)
        assert torch.equal(out_a, b(x)), "train" if train else "eval"


def _document(folder) -> dict:
    return json.loads((folder / "netsculpt.json").read_text())


def test_torchvision_dropout_and_stochastic_depth_survive(tmp_path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(num_classes=10, dropout=0.5, stochastic_depth_prob=0.5)
    x = torch.randn(2, 3, 32, 32)
    small = ns.prune(model.eval(), x, ratio=0.3)
    ns.save(small, tmp_path)
    assert _document(tmp_path)["base"]["name"] == "torchvision:efficientnet_b0"  # defaults 0.2 / 0.2
    loaded = ns.load(tmp_path)
    assert loaded.classifier[0].p == 0.5
    # torchvision scales the rate by block index: the last of 16 blocks gets 0.5 * 15 / 16
    assert loaded.features[7][0].stochastic_depth.p == 0.5 * 15 / 16
    _same_in_train_and_eval(small, loaded, x)


def test_timm_drop_rate_and_drop_path_survive(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", num_classes=10, drop_rate=0.2, drop_path_rate=0.1).eval()
    x = torch.randn(2, 3, 32, 32)
    ns.save(model, tmp_path)
    base = _document(tmp_path)["base"]
    assert (base["kind"], base["name"], base["kwargs"]) == ("netsculpt", "timm:efficientnet_b0", {})
    loaded = ns.load(tmp_path)
    assert loaded.drop_rate == 0.2  # timm's head dropout is a plain attribute of the model
    # timm builds DropPath only where the rate is non-zero (Identity in the default build)
    assert type(loaded.blocks[6][0].drop_path).__name__ == "DropPath"
    assert loaded.blocks[6][0].drop_path.drop_prob == model.blocks[6][0].drop_path.drop_prob > 0
    _same_in_train_and_eval(model, loaded, x)


def test_timm_feature_extractor_without_head(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=0, drop_rate=0.3).eval()  # pooled features out
    x = torch.randn(2, 3, 32, 32)
    small = ns.prune(model, x, ratio=0.3)
    ns.save(small, tmp_path)
    base = _document(tmp_path)["base"]
    assert (base["name"], base["num_classes"]) == ("timm:resnet10t", 0)
    loaded = ns.load(tmp_path)
    assert loaded(x).shape == (2, small.num_features)
    _same_in_train_and_eval(small, loaded, x)


def test_files_written_before_rates_load_with_the_builder_defaults(tmp_path) -> None:
    model = torchvision.models.mobilenet_v3_small(num_classes=10, dropout=0.5)
    ns.save(model, tmp_path)
    data = _document(tmp_path)
    assert data["rates"]["classifier.2"]["attrs"]["p"] == 0.5
    del data["rates"]
    (tmp_path / "netsculpt.json").write_text(json.dumps(data))
    assert ns.load(tmp_path).classifier[2].p == 0.2  # torchvision's default


def test_builder_rates_are_not_written_so_older_netsculpt_reads_the_file(tmp_path) -> None:
    small = ns.prune(torchvision.models.mobilenet_v3_small(num_classes=10).eval(), torch.randn(1, 3, 32, 32))
    ns.save(small, tmp_path)
    assert "rates" not in _document(tmp_path)  # older versions refuse a field they do not know
    ns.save(ns.create_model("mobilenetv2_cifar", dropout=0.3), tmp_path / "zoo")
    assert "rates" not in _document(tmp_path / "zoo")  # the recorded builder option reproduces it


def test_rates_only_set_known_attributes_and_build_only_known_classes(tmp_path) -> None:
    ns.save(torchvision.models.mobilenet_v3_small(num_classes=10, dropout=0.3), tmp_path)
    data = _document(tmp_path)
    data["rates"]["classifier.2"]["class"] = "os.system"
    (tmp_path / "netsculpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="rates"):
        ns.load(tmp_path)
    data["rates"]["classifier.2"] = {"attrs": {"p": 0.4, "forward": 1}}  # not an attribute it has
    (tmp_path / "netsculpt.json").write_text(json.dumps(data))
    with pytest.warns(NetsculptWarning, match=r"classifier\.2\.forward do not fit"):
        loaded = ns.load(tmp_path)
    assert loaded.classifier[2].p == 0.4 and callable(loaded.classifier[2].forward)


class Head(torch.nn.Module):
    """A class netsculpt has no builder for: its base is a ``builder`` or ``user`` kind."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.classifier = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fc(x))


def make_head() -> Head:
    return Head()


def test_a_builder_base_keeps_rates_changed_after_it_was_built(tmp_path) -> None:
    """The builder runs only for a trusting loader, so save records every rate; they used to be left out
    and the model reloaded with the builder's p=0.5."""
    torch.manual_seed(0)
    model = make_head()
    model.classifier.p = 0.1
    ns.save(model, tmp_path, builder="tests.saved.test_rates:make_head")
    assert _document(tmp_path)["rates"]["classifier"]["attrs"]["p"] == 0.1
    loaded = ns.load(tmp_path, trust_builder="tests.saved.test_rates:make_head")
    assert loaded.classifier.p == 0.1
    _same_in_train_and_eval(model, loaded, torch.randn(4, 8))


def test_a_user_class_base_keeps_its_rates_with_model_or_trust_builder(tmp_path) -> None:
    model = make_head()
    model.classifier.p = 0.1
    ns.save(model, tmp_path)
    assert _document(tmp_path)["base"]["kind"] == "user"
    assert ns.load(tmp_path, model=make_head()).classifier.p == 0.1
    assert ns.load(tmp_path, trust_builder="tests.saved.test_rates:make_head").classifier.p == 0.1
