"""Hugging Face models whose config nests other configs (DETR's and UperNet's ``backbone_config``, CLIP's
``text_config`` / ``vision_config``) reload from the folder alone, under the same rules as any other
(netsculpt/saved/huggingface.py, docs/security.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError

T = pytest.importorskip("transformers")


def _detr() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    backbone = T.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage4"],
    )  # fmt: skip
    config = T.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone, d_model=32,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    return T.DetrForObjectDetection(config).eval(), (torch.randn(1, 3, 64, 64),)


def _upernet() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    stages = ["stage1", "stage2", "stage3", "stage4"]
    backbone = T.ConvNextConfig(hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], out_features=stages)
    config = T.UperNetConfig(
        backbone_config=backbone, hidden_size=16, auxiliary_in_channels=16, auxiliary_channels=8, num_labels=3
    )
    torch.manual_seed(0)
    return T.UperNetForSemanticSegmentation(config).eval(), (torch.randn(1, 3, 64, 64),)


def _clip(attn: str | dict[str, str] = "sdpa") -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    text = dict(tower, vocab_size=100, max_position_embeddings=16, bos_token_id=0, eos_token_id=1)
    config = T.CLIPConfig(
        text_config=text, vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=16
    )
    torch.manual_seed(0)
    model = T.CLIPModel._from_config(config, attn_implementation=attn).eval()
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    return model, (ids, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def _tensors(out: object) -> dict[str, torch.Tensor]:
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def _round_trip(tmp_path: Path, model: torch.nn.Module, inputs: tuple) -> tuple[dict, torch.nn.Module]:
    small = ns.prune(model, inputs if len(inputs) > 1 else inputs[0], ratio=0.5)
    ns.save(small, tmp_path / "m")
    loaded = ns.load(tmp_path / "m")
    with torch.no_grad():
        mine, theirs = _tensors(loaded(*inputs)), _tensors(small(*inputs))
    assert mine.keys() == theirs.keys() and mine
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key
    return json.loads((tmp_path / "m" / "netsculpt.json").read_text())["base"], loaded


@pytest.mark.parametrize("make", [_detr, _upernet, _clip], ids=["detr", "upernet", "clip"])
def test_a_nested_config_reloads_bit_for_bit_from_the_folder(tmp_path: Path, make) -> None:
    """DETR failed because its ResNet backbone runs eager attention where the model runs SDPA; UperNet
    because ``pool_scales`` is a tuple until a JSON round trip makes it a list."""
    model, inputs = make()
    base, loaded = _round_trip(tmp_path, model, inputs)
    assert base["kind"] == "huggingface"
    assert type(loaded) is type(model)


def test_each_nested_config_keeps_its_own_attention_kernel(tmp_path: Path) -> None:
    model, inputs = _clip({"": "sdpa", "text_config": "eager", "vision_config": "sdpa"})
    base, loaded = _round_trip(tmp_path, model, inputs)
    assert base["attn_implementation"] == {"": "sdpa", "text_config": "eager", "vision_config": "sdpa"}
    assert loaded.config.text_config._attn_implementation == "eager"
    assert loaded.config.vision_config._attn_implementation == "sdpa"


def _saved_detr(tmp_path: Path) -> tuple[Path, dict]:
    model, inputs = _detr()
    ns.save(ns.prune(model, inputs[0], ratio=0.5), tmp_path / "m")
    return tmp_path / "m", json.loads((tmp_path / "m" / "netsculpt.json").read_text())


def _with_base(folder: Path, document: dict, **changes: object) -> None:
    edited = {**document, "base": {**document["base"], **changes}}
    (folder / "netsculpt.json").write_text(json.dumps(edited))


@pytest.mark.parametrize(
    ("backbone", "error"),
    [
        ({"auto_map": {"AutoBackbone": "evil.modeling:Net"}}, r"remote code \(config\.backbone_config\.auto"),
        ({"attn_implementation": "someone/kernel"}, r"remote code \(config\.backbone_config\.attn_impl"),
        ({"model_type": "not_a_model"}, "could not build DetrForObjectDetection"),
        ({"hidden_sizes": [8, 16, 16, 10**6]}, "would hold"),  # sized on the meta device first
    ],
)
def test_a_nested_config_is_checked_like_the_outer_one(tmp_path: Path, backbone: dict, error: str) -> None:
    folder, document = _saved_detr(tmp_path)
    config = document["base"]["config"]
    nested = {**config["backbone_config"], **backbone}
    _with_base(folder, document, config={**config, "backbone_config": nested})
    with pytest.raises(CheckpointError, match=error):
        ns.load(folder)


def test_a_backbone_named_on_the_hub_is_refused(tmp_path: Path) -> None:
    """``backbone: "org/repo"`` without a ``backbone_config`` makes transformers fetch that repo's config."""
    folder, document = _saved_detr(tmp_path)
    config = {**document["base"]["config"], "backbone_config": None, "backbone": "someone/backbone"}
    _with_base(folder, document, config=config)
    with pytest.raises(CheckpointError, match=r"remote code \(config\.backbone = 'someone/backbone'"):
        ns.load(folder)


@pytest.mark.parametrize(
    ("attn", "error"),
    [
        ({"": "sdpa", "backbone_config": "someone/kernel"}, "attn_implementation"),  # the schema
        ({"": "sdpa", "no_such_config": "eager"}, "attn_implementation names 'no_such_config', not a nested"),
    ],
)
def test_per_config_kernels_are_checked(tmp_path: Path, attn: dict, error: str) -> None:
    folder, document = _saved_detr(tmp_path)
    _with_base(folder, document, attn_implementation=attn)
    with pytest.raises(CheckpointError, match=error):
        ns.load(folder)
