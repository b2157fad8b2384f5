"""timm feature extractors (``features_only=True``) are recognised as their timm build and round-trip.

They used to be saved as a class netsculpt cannot rebuild (``FeatureListNet``, ``EfficientNetFeatures``),
so ``ns.load`` refused them without ``model=``: timm records ``features_only`` / ``out_indices`` nowhere
but in the ``FeatureInfo`` the extractor carries, which is where they are read from now.
"""

from __future__ import annotations

import json

import pytest
import torch

import netsculpt as ns
from netsculpt.models.identify import feature_options

timm = pytest.importorskip("timm")

# (architecture, options): timm's generic FeatureListNet wrapper, and two families' own *Features classes
FEATURE_MODELS = [
    ("resnet18", {}),
    ("mobilenetv3_small_100", {"out_indices": (1, 2)}),
    ("efficientnet_b0", {"out_indices": (1, 2)}),
]


def _same_maps(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert isinstance(b, list) and len(a) == len(b)
    for mine, theirs in zip(a, b):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize(("arch", "options"), FEATURE_MODELS, ids=[a for a, _ in FEATURE_MODELS])
def test_a_timm_feature_extractor_saves_and_reloads_as_its_timm_build(tmp_path, arch, options) -> None:
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, features_only=True, **options).eval()
    ns.save(model, tmp_path)
    base = json.loads((tmp_path / "netsculpt.json").read_text())["base"]
    assert (base["kind"], base.get("name")) == ("netsculpt", f"timm:{arch}")  # was kind "user"
    indices = list(options.get("out_indices", model.feature_info.out_indices))
    assert base["kwargs"] == {"features_only": True, "out_indices": indices}
    loaded = ns.load(tmp_path)  # no model= needed
    assert type(loaded) is type(model)
    state, saved = loaded.state_dict(), model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _same_maps(model(x), loaded(x))


def test_a_pruned_feature_extractor_with_another_wrapper_and_input_channels_reloads(tmp_path) -> None:
    torch.manual_seed(0)
    options = {"feature_cls": "hook", "in_chans": 1, "out_indices": (2, 4)}
    model = timm.create_model("resnet18", features_only=True, **options)
    x = torch.randn(1, 1, 64, 64)
    small = ns.prune(model.eval(), x, ratio=0.3)
    ns.save(small, tmp_path)
    base = json.loads((tmp_path / "netsculpt.json").read_text())["base"]
    assert (base["kind"], base.get("in_channels")) == ("netsculpt", 1)
    assert base["kwargs"]["feature_cls"] == "hook"
    loaded = ns.load(tmp_path)
    assert type(loaded).__name__ == "FeatureHookNet"
    with torch.no_grad():
        _same_maps(small(x), loaded(x))


def test_feature_options_only_for_feature_extractors() -> None:
    with torch.device("meta"):
        classifier = timm.create_model("resnet18")  # its feature_info is a plain list of dicts
        extractor = timm.create_model("resnet18", features_only=True, out_indices=2)  # the last two
    assert feature_options(classifier) is None
    found = feature_options(extractor)
    assert found == {"features_only": True, "out_indices": [-2, -1], "feature_cls": "list"}
