"""Hugging Face models (tiny BERT / GPT-2 / ViT, built from configs) through the rest of netsculpt: data
criteria, training and distillation on their ``ModelOutput``, weight compression of GPT-2's transposed
``Conv1D``, and int8 on ONNX Runtime / OpenVINO (docs/engine.md "Hugging Face models: what works")."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.layer_kinds import is_hf_conv1d
from netsculpt.logits import logits_of
from netsculpt.runtimes.output_tree import OutputTree
from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_
from netsculpt.train import DistillConfig, TrainConfig, distill, train
from netsculpt.weights import KMeansConfig, LowRankConfig, factorize_, kmeans_palettize_
from netsculpt.weights.lowrank import svd_linear

T = pytest.importorskip("transformers")

_BERT = dict(
    vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
)
_GPT2 = dict(vocab_size=500, n_embd=64, n_layer=2, n_head=4, pad_token_id=0)
_VIT = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)


def bert() -> nn.Module:
    return T.BertForSequenceClassification(T.BertConfig(num_labels=3, **_BERT)).eval()


def gpt2(**extra: object) -> nn.Module:
    return T.GPT2ForSequenceClassification(T.GPT2Config(num_labels=3, **_GPT2, **extra)).eval()


def vit() -> nn.Module:
    return T.ViTForImageClassification(T.ViTConfig(num_labels=3, intermediate_size=128, **_VIT)).eval()


def _inputs(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(8, 3, 32, 32, generator=g)
        if name == "vit"
        else torch.randint(1, 500, (8, 12), generator=g)
    )


def _loader(x: torch.Tensor) -> DataLoader:
    labels = torch.arange(len(x)) % 3
    return DataLoader(TensorDataset(x, labels), batch_size=4)


MODELS = {"bert": bert, "gpt2": gpt2, "vit": vit}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- 1. data criteria read ModelOutput.logits --------------------------------------------------------


@pytest.mark.parametrize(("name", "criterion"), [("bert", "taylor"), ("gpt2", "fisher"), ("vit", "taylor")])
def test_gradient_criteria_read_the_logits_of_a_model_output(name: str, criterion: str) -> None:
    """Taylor / Fisher back-propagate cross-entropy on the logits; a ``ModelOutput`` was refused."""
    torch.manual_seed(0)
    model, x = MODELS[name](), _inputs(name)
    small = ns.prune(model, x[:2], criterion=criterion, ratio=0.5, data=_loader(x), calib_batches=2)
    assert _params(small) < _params(model)


def test_logits_of_reads_a_field_but_never_guesses_in_a_tuple() -> None:
    """A tuple stays refused: an ultralytics classifier's eval output is (probabilities, logits)."""
    t = torch.zeros(2, 3)
    assert logits_of({"logits": t}) is t and logits_of(OrderedDict(loss=None, logits=t)) is t
    pair = (t.softmax(1), t)
    assert logits_of(pair) is pair


# --- 2. training and distillation --------------------------------------------------------------------


def test_a_pruned_bert_fine_tunes_and_distils_on_token_batches() -> None:
    torch.manual_seed(0)
    teacher, x = bert(), _inputs("bert")
    student = ns.prune(teacher, x[:2], ratio=0.5)
    config = TrainConfig(epochs=1, optimizer="adamw", lr=1e-3, weight_decay=0.0)
    result = train(student, _loader(x), _loader(x), config)
    assert result.history and torch.isfinite(torch.tensor(result.history[-1]["train_loss"]))
    result = distill(student, teacher, _loader(x), _loader(x), config, DistillConfig())
    assert torch.isfinite(torch.tensor(result.history[-1]["train_loss"]))


# --- 3. weight compression of GPT-2's Conv1D (weight stored (in, out)) --------------------------------


def test_two_four_sparsity_runs_along_the_inputs_of_gpt2_conv1d() -> None:
    torch.manual_seed(0)
    model = gpt2()
    mask_layers_(model, SparsityConfig(sparsity=0.5, pattern="2:4"), 0.5)
    remove_masks_(model)
    layers = [m for m in model.modules() if is_hf_conv1d(m)]
    assert len(layers) == 8  # c_attn, c_proj, c_fc, mlp.c_proj in each of 2 blocks
    for layer in layers:
        w = layer.weight.detach().t()  # (out, in): 2:4 kernels group along the inputs
        assert bool(((w != 0).reshape(w.shape[0], -1, 4).sum(-1) == 2).all())


def test_gpt2_conv1d_is_clustered_and_reloads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, x = gpt2(), _inputs("gpt2")[:2]
    kmeans_palettize_(model, KMeansConfig(bits=2))
    assert model.transformer.h[0].mlp.c_fc.weight.unique().numel() <= 4  # 2 bits: 4 centroids
    ns.save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(ns.load(tmp_path / "m")(x).logits, model(x).logits)


def test_gpt2_conv1d_factorises_and_reloads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, x = gpt2(), _inputs("gpt2")[:2]
    fc, h = model.transformer.h[0].mlp.c_fc, torch.randn(2, 5, 64)
    with torch.no_grad():  # full rank: the chain is the layer, up to float32 rounding
        torch.testing.assert_close(svd_linear(fc, 64)(h), fc(h), atol=1e-5, rtol=1e-5)
    done = factorize_(model, LowRankConfig(macs_ratio=0.5))
    assert sum("c_fc" in r.name or "c_attn" in r.name for r in done) == 4
    ns.save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(ns.load(tmp_path / "m")(x).logits, model(x).logits)


# --- 4. int8 on ONNX Runtime and OpenVINO -------------------------------------------------------------


def test_bert_int8_onnxruntime_returns_its_logits_field(tmp_path: Path) -> None:
    from netsculpt.weights import quantize_int8

    torch.manual_seed(0)
    model, x = bert(), _inputs("bert")
    q = quantize_int8(model, x[:2], _loader(x), tmp_path)
    out = q(x[:2])
    assert out.logits is out["logits"]
    with torch.no_grad():  # int8 of a width-64 model: measured 1e-3; 0.05 is far below a logit's scale
        torch.testing.assert_close(out.logits, model(x[:2]).logits, atol=0.05, rtol=0.0)


def test_vit_int8_openvino_returns_its_logits_field(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from netsculpt.weights.int8_runtimes import quantize_openvino

    torch.manual_seed(0)
    model, x = vit(), _inputs("vit")
    out = quantize_openvino(model, x[:2], list(_loader(x)), tmp_path)(x[:2])
    with torch.no_grad():  # measured 0.016 on this random ViT; 0.1 is still below a logit's scale
        torch.testing.assert_close(out.logits, model(x[:2]).logits, atol=0.1, rtol=0.0)


def test_a_model_output_tree_survives_its_json() -> None:
    tree = OutputTree.of(bert()(_inputs("bert")[:2]), "bert")
    again = OutputTree.from_json(tree.to_json(), "here")
    t = torch.zeros(2, 3)
    assert again.rebuild([t]).logits is t


def test_gpt2_key_value_cache_is_refused_naming_use_cache(tmp_path: Path) -> None:
    from netsculpt.weights import quantize_int8

    x = _inputs("gpt2")
    with pytest.raises(ConfigError, match=r"DynamicCache.*use_cache = False"):
        quantize_int8(gpt2(), x[:2], _loader(x), tmp_path)


def test_bit_search_features_read_conv1d_as_a_linear_out_by_in() -> None:
    """HAQ's state for a layer: (linear?, in, out, kernel, weights, ...); GPT-2's c_fc is Linear(64, 256)."""
    from netsculpt.weights.bit_space import BitSpace, BitWalkSpace

    torch.manual_seed(0)
    walk = BitWalkSpace(BitSpace(gpt2(), KMeansConfig(), high=2))
    names = [layer.name for layer in walk.space.layers]
    row = walk._features[names.index("transformer.h.0.mlp.c_fc")]
    assert list(row[:5]) == [1.0, 64.0, 256.0, 1.0, 64.0 * 256.0]
