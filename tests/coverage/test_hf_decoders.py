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
from tests.coverage._check import check_prunes_exactly, make_nontrivial_, output_tensor

T = pytest.importorskip("transformers")

HIDDEN, LAYERS, VOCAB, SEQ, FFN = 64, 2, 500, 16, 128
# ids 0-2 are the special tokens; Phi-3's defaults (32000) lie outside a 500-word vocabulary
_TINY = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, intermediate_size=FFN,
             num_attention_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # fmt: skip

# name -> (model class, config class, config arguments beyond _TINY)
DECODERS: dict[str, tuple[str, str, dict]] = {
    "llama_gqa": ("LlamaForCausalLM", "LlamaConfig", {"num_key_value_heads": 2}),
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
    print(name, result)
