"""A pruned Hugging Face model's config still describes the unpruned model: ``ns.save`` says so and that
``ns.load`` is the way back, and ``to_pretrained_config`` gives a config transformers rebuilds a uniformly
pruned model from (netsculpt/saved/hf_pretrained.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.saved.huggingface import to_pretrained_config

T = pytest.importorskip("transformers")


def _bert() -> torch.nn.Module:
    config = T.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100,
        num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    return T.BertForSequenceClassification(config).eval()


def _llama() -> torch.nn.Module:
    config = T.LlamaConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=200, use_cache=False,  # without the KV cache heads prune
    )  # fmt: skip
    torch.manual_seed(0)
    return T.LlamaForCausalLM(config).eval()


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 8), generator=torch.Generator().manual_seed(0))


def _feed_forward_only(model: torch.nn.Module) -> list[torch.nn.Module]:
    """BERT's head size is hidden_size / num_attention_heads, and its pooler width is hidden_size: only
    the feed-forward width can change in a BERT config."""
    return [m for name, m in model.named_modules() if name.endswith(("attention", "pooler"))]


def _round_trip(small: torch.nn.Module, tmp_path: Path, ids: torch.Tensor) -> None:
    config = to_pretrained_config(small)
    small.save_pretrained(tmp_path / "hf")
    rebuilt = type(small).from_pretrained(tmp_path / "hf", config=config).eval()
    config.save_pretrained(tmp_path / "hf")  # or written as config.json: from_pretrained alone works
    alone = type(small).from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        expected = small(ids).logits
        assert torch.equal(rebuilt(ids).logits, expected)
        assert torch.equal(alone(ids).logits, expected)


def test_a_uniformly_pruned_bert_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    model = _bert()
    small = ns.prune(model, _ids(100), ratio=0.5, ignored=_feed_forward_only(model))
    assert to_pretrained_config(small).intermediate_size == 32
    assert small.config.intermediate_size == 64  # the model's own config is left alone
    _round_trip(small, tmp_path, _ids(100))


@pytest.mark.parametrize("inexact", [False, True])
def test_a_uniformly_pruned_llama_round_trips_through_save_pretrained(tmp_path: Path, inexact: bool) -> None:
    """Heads 4 -> 2 and key/value heads 2 -> 1 of size 16, SwiGLU 128 -> 64; with allow_inexact the
    residual width 64 -> 32 too (hidden_size)."""
    small = ns.prune(_llama(), _ids(200), ratio=0.5, allow_inexact=inexact)
    config = to_pretrained_config(small)
    got = (config.intermediate_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim)
    assert got == (64, 2, 1, 16)
    assert config.hidden_size == (32 if inexact else 64)
    _round_trip(small, tmp_path, _ids(200))


def test_qwen2_gets_the_head_dim_its_config_class_does_not_declare(tmp_path: Path) -> None:
    """Qwen2 reads ``getattr(config, "head_dim", hidden_size // heads)``: fewer heads need it written."""
    config = T.Qwen2Config(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=200, use_cache=False,
    )  # fmt: skip
    torch.manual_seed(0)
    small = ns.prune(T.Qwen2ForCausalLM(config).eval(), _ids(200), ratio=0.5)
    assert to_pretrained_config(small).head_dim == 16
    _round_trip(small, tmp_path, _ids(200))


def test_layers_of_different_widths_are_refused_with_each_width() -> None:
    small = ns.prune(_llama(), _ids(200), ratio=0.5, ratios={"model.layers.0.mlp.gate_proj": 0.25})
    with pytest.raises(ConfigError, match=r"feed-forward width \(model\.layers\.0\.mlp\.up_proj: 96"):
        to_pretrained_config(small)


def test_fewer_bert_heads_are_refused_with_the_reason() -> None:
    small = ns.prune(_bert(), _ids(100), ratio=0.5)
    with pytest.raises(ConfigError, match=r"heads 2 -> 1.*size a head as hidden_size / num_attention"):
        to_pretrained_config(small)
    with pytest.raises(ConfigError, match="takes a Hugging Face transformers model, got Linear"):
        to_pretrained_config(torch.nn.Linear(2, 2))


def test_ns_save_records_that_ns_load_is_the_way_back(tmp_path: Path) -> None:
    ns.save(ns.prune(_bert(), _ids(100), ratio=0.5), tmp_path / "m")
    note = json.loads((tmp_path / "m" / "netsculpt.json").read_text())["extra"]["huggingface"]
    assert note["load_with"] == "netsculpt.load(folder)"
    assert "describes the unedited (unpruned) model" in note["config"]
    assert note["to_pretrained_config"].startswith("not possible: cannot describe this pruned")
    assert ns.load(tmp_path / "m") is not None
