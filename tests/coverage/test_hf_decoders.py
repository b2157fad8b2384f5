"""Hugging Face decoder LLMs (Llama with grouped-query and multi-head attention, Mistral's sliding window,
Qwen2, Gemma, Phi-3, a sequence classifier) at tiny sizes: trace, prune exactly, count MACs, save and load
(docs/engine.md, "Hugging Face decoders")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.graph import trace
from netsculpt.measure import count_macs
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.coverage._check import check_prunes_exactly, make_nontrivial_, output_tensor

T = pytest.importorskip("transformers")

HIDDEN, LAYERS, VOCAB, SEQ, FFN = 64, 2, 500, 16, 128
# ids 0-2 are the special tokens; Phi-3's defaults (32000) lie outside a 500-word vocabulary
_TINY = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, intermediate_size=FFN,
             num_attention_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # fmt: skip

# name -> (model class, config class, config arguments beyond _TINY)
DECODERS: dict[str, tuple[str, str, dict]] = {
    "llama_gqa": ("LlamaForCausalLM", "LlamaConfig", {"num_key_value_heads": 2}),
    # eager attention repeats key/value heads with repeat_kv (expand + reshape), as SDPA does under a mask
    "llama_gqa_eager": (
        "LlamaForCausalLM",
        "LlamaConfig",
        {"num_key_value_heads": 2, "attn_implementation": "eager"},
    ),
    "llama_mha": ("LlamaForCausalLM", "LlamaConfig", {"num_key_value_heads": 4}),
    "mistral": ("MistralForCausalLM", "MistralConfig", {"num_key_value_heads": 2, "sliding_window": 8}),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", {"num_key_value_heads": 2}),
    "gemma": ("GemmaForCausalLM", "GemmaConfig", {"num_key_value_heads": 1, "head_dim": 16}),
    "phi3": ("Phi3ForCausalLM", "Phi3Config", {"num_key_value_heads": 2}),
    "llama_classifier": ("LlamaForSequenceClassification", "LlamaConfig", {"num_key_value_heads": 2}),
}


def build(name: str) -> Callable[[], nn.Module]:
    model_cls, config_cls, extra = DECODERS[name]

    def make() -> nn.Module:
        torch.manual_seed(0)
        config = getattr(T, config_cls)(**_TINY, **extra)
        return getattr(T, model_cls)(config).eval()

    return make


def ids() -> torch.Tensor:
    return torch.randint(3, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(0))


# 50 % per group: only the SwiGLU hidden units prune (the residual width, q/k/v widths, vocabulary stay),
# so each MLP keeps about half its MACs and attention and the LM head keep all theirs.
MACS_BOUND = 0.9


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_prunes_exactly(name: str) -> None:
    result = check_prunes_exactly(build(name)(), ids())
    assert result["macs_ratio"] < MACS_BOUND, result


def test_macs_match_a_hand_count() -> None:
    """Per token: q, o 64x64; k, v 64x32 (2 of 4 heads); gate, up, down 64x128; LM head 64x500. Attention
    runs every query head over all 16 positions: 2 x 4 heads x 16 x 16 x (16 + 16)."""
    tokens = 2 * SEQ
    linear = tokens * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * FFN)
    attention = 2 * 4 * SEQ * SEQ * (16 + 16)
    expected = LAYERS * (linear + attention) + tokens * HIDDEN * VOCAB
    assert count_macs(build("llama_gqa")(), ids())[0] == expected == 3_514_368


def test_what_stays_and_why() -> None:
    """The SwiGLU hidden units are one group per layer; everything else is pinned, each with its reason."""
    graph = trace(build("llama_gqa")(), ids())
    assert [g.id for g in graph.prunable_groups] == [f"model.layers.{i}.mlp.gate_proj" for i in range(LAYERS)]
    mlp = graph.group("model.layers.0.mlp.gate_proj")
    assert {m.name for m in mlp.members} == {
        f"model.layers.0.mlp.{p}_proj.weight" for p in ("gate", "up", "down")
    }
    assert "input_layernorm" in graph.group("model.embed_tokens:in").reasons[0]  # RMSNorm: mean over x^2
    heads = graph.group("model.layers.0.self_attn.q_proj")  # a key/value head and its 2 query heads
    assert {m.name.split(".")[-2] for m in heads.members} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert heads.size == 2 and heads.n_prunable == 0 and "KV cache" in heads.reasons[0], heads


def test_the_kv_cache_pins_the_heads_and_without_it_they_prune_whole() -> None:
    """use_cache (on by default) returns every layer's keys and values: outputs, pinned with the cache named.
    Without it whole heads go (graph/rules/heads.py): a key/value head with the query heads it serves."""
    model = make_nontrivial_(build("llama_gqa")())
    assert model.config.use_cache
    with_cache = trace(model, ids())
    model.config.use_cache = False
    without = trace(model, ids())
    heads = "model.layers.0.self_attn.q_proj"
    assert "KV cache" in with_cache.group(heads).reasons[0]
    assert without.group(heads).size == without.group(heads).n_prunable == 2
    plan = random_plan(without, 0.5, seed=0)
    assert pruning_error(model, without, plan, ids()) < 1e-5
    small = ns.apply_plan(model, plan, ids(), graph=without)
    attn = small.model.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.o_proj.in_features) == (32, 16, 32)


@pytest.mark.parametrize("name", list(DECODERS))
def test_the_pipeline_a_user_runs(name: str, tmp_path: Path) -> None:
    """ns.prune on token ids -> save -> load onto a fresh instance -> the same logits."""
    model, x = make_nontrivial_(build(name)()), ids()
    small = ns.prune(model, x, ratio=0.5)
    assert count_macs(small, x)[0] < count_macs(model, x)[0]
    ns.save(small, tmp_path / "m")
    loaded = ns.load(tmp_path / "m", model=build(name)()).eval()
    with torch.no_grad():
        assert torch.equal(output_tensor(loaded(x)), output_tensor(small(x)))


@pytest.mark.parametrize("length", [1, SEQ])
def test_padding_mask_and_one_token(length: int) -> None:
    """(ids, attention_mask): a padded batch sends SDPA a mask, so keys and values go through repeat_kv;
    one token with a mask is a decoding step's shape (Hugging Face packs the query heads for it)."""
    model, x = make_nontrivial_(build("llama_gqa")()), ids()[:, :length]
    mask = torch.ones_like(x)
    mask[0, : length - 1] = 0  # left padding (nothing to pad in a single token)
    graph = trace(model, (x, mask))
    assert len(graph.prunable_groups) == LAYERS
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), (x, mask)) < 1e-5
