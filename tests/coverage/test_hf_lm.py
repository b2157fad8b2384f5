"""Causal language models through netsculpt's losses: taylor / fisher on the next-token loss, training,
distillation and perplexity (docs/criteria.md "Language models"; tasks/language_model.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import netsculpt as ns
from netsculpt.errors import DataError, PruningError
from netsculpt.graph import trace
from netsculpt.importance import get_criterion
from netsculpt.tasks import get_task
from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate, train

T = pytest.importorskip("transformers")

VOCAB, SEQ = 64, 12


def llama(seed: int = 0, classifier: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    config = T.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, use_cache=False, pad_token_id=0, num_labels=3,
    )  # fmt: skip
    return (T.LlamaForSequenceClassification if classifier else T.LlamaForCausalLM)(config).eval()


def ids(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(seed))


def hf_loss(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """Hugging Face's own causal-LM loss (it shifts ``labels`` by one and ignores -100)."""
    with torch.no_grad():
        return float(model(input_ids=x, attention_mask=mask, labels=labels).loss)


def test_next_token_loss_is_hugging_faces() -> None:
    """Every batch form gives the loss ``model(ids, labels=...)`` computes: ids alone, (ids, labels with
    -100), and a padded dict whose attention-mask zeros count nowhere."""
    model, x, task = llama(), ids(4), get_task("language_modeling")
    labels = x.clone()
    labels[:, :5] = -100
    mask = torch.ones_like(x)
    mask[1, 8:] = 0  # right padding of the second sequence
    cases = [
        (x, hf_loss(model, x, x)),
        ((x, labels), hf_loss(model, x, labels)),
        ({"input_ids": x, "attention_mask": mask}, hf_loss(model, x, x.masked_fill(mask == 0, -100), mask)),
    ]
    for batch, expected in cases:
        inputs, targets = task.to_device(batch, torch.device("cpu"))
        with torch.no_grad():
            loss = float(task.loss(model, inputs, targets)[0])
        assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_gradient_criteria_score_a_causal_lm(criterion: str) -> None:
    """Before: refused ("the model must return (batch, classes) logits"). The three batch forms carry the
    same tokens, so they give the same scores; the pruned model computes what the masked one does."""
    model, x = llama(), ids()
    graph = trace(model, x[:2])
    forms = [
        DataLoader(x, batch_size=4),
        DataLoader(TensorDataset(x, x), batch_size=4),
        [{"input_ids": x[:4], "attention_mask": torch.ones(4, SEQ, dtype=torch.long)}, {"input_ids": x[4:]}],
    ]
    scores = [get_criterion(criterion).score(model, graph, data) for data in forms]
    assert scores[0].keys() == {g.id for g in graph.prunable_groups}
    for other in scores[1:]:
        for gid, s in scores[0].items():
            np.testing.assert_allclose(other[gid], s, rtol=1e-6, atol=1e-12)
    assert all(np.ptp(s) > 0 for s in scores[0].values())  # the loss separates channels
    small = ns.prune(model, x[:2], criterion=criterion, ratio=0.5, data=forms[0])
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.filterwarnings("ignore:the plan does not list")  # the pinned groups keep everything
def test_taylor_ranks_by_the_language_modelling_loss() -> None:
    """Removing the half of the SwiGLU units taylor scores lowest costs less next-token loss than removing
    the half it scores highest (first order: the scores are the loss change of each unit)."""
    model, x = llama(), ids(16)
    graph = trace(model, x[:2])
    scores = get_criterion("taylor").score(model, graph, DataLoader(x, batch_size=8))
    mlp = next(g for g in graph.prunable_groups if "mlp" in g.id)
    order = np.argsort(scores[mlp.id])
    half = len(order) // 2
    losses = []
    for keep in (order[half:], order[:half]):
        whole = {g.id: list(range(g.size)) for g in graph.prunable_groups}
        plan = ns.PrunePlan(
            {**whole, mlp.id: sorted(keep.tolist())}, {g.id: g.size for g in graph.prunable_groups}
        )
        small = ns.apply_plan(model, plan, x[:2])
        losses.append(hf_loss(small, x, x))
    assert losses[0] < losses[1]


def test_per_sequence_labels_with_per_token_logits_are_refused() -> None:
    """A causal LM given one class per sequence: no loss applies, and the error says why."""
    model, x = llama(), ids()
    data = DataLoader(TensorDataset(x, torch.arange(8) % 3), batch_size=4)
    with pytest.raises(PruningError, match="one class per sequence"):
        ns.prune(model, x[:2], criterion="taylor", ratio=0.5, data=data)
    with pytest.raises(TypeError, match="one class per sequence"):
        train(model, data, data, TrainConfig(epochs=1, optimizer="adamw", lr=1e-3))
    tags = DataLoader(TensorDataset(x, x % 5), batch_size=4)  # per-token classes, not the next token
    with pytest.raises(DataError, match="labels must equal"):
        ns.prune(model, x[:2], criterion="taylor", ratio=0.5, data=tags)
    with pytest.raises(PruningError, match="one class label per sample"):  # before: (B, T) ids as classes
        ns.prune(model, x[:2], criterion="hrel", ratio=0.5, data=[{"input_ids": x}])
    with pytest.raises(DataError, match="per token"):  # token batches for a sequence classifier
        ns.prune(
            llama(classifier=True), x[:2], criterion="taylor", ratio=0.5, data=DataLoader(x, batch_size=4)
        )


def test_train_evaluate_and_distill_a_causal_lm() -> None:
    """Token batches select the language-modelling task: perplexity is exp of the token-weighted mean
    next-token loss (Hugging Face's loss over the same tokens), training lowers it, distillation runs."""
    x, model = ids(16), llama()
    loader = DataLoader(x, batch_size=4)
    result = evaluate(model, loader)
    assert result.metrics["task"] == "language_modeling"  # type: ignore[attr-defined]
    assert result.perplexity == pytest.approx(math.exp(hf_loss(model, x, x)), rel=1e-5)  # type: ignore[attr-defined]
    accuracy, loss = result
    assert 0 <= accuracy <= 1 and result.perplexity == pytest.approx(math.exp(loss))  # type: ignore[attr-defined]
    config = TrainConfig(epochs=3, optimizer="adamw", lr=1e-2, weight_decay=0.0, seed=0)
    history = train(model, loader, loader, config).history
    assert history[-1]["test_perplexity"] < result.perplexity  # type: ignore[attr-defined]
    assert history[-1]["test_loss"] == pytest.approx(math.log(history[-1]["test_perplexity"]))
    student = ns.prune(model, x[:2], criterion="taylor", ratio=0.5, data=loader)
    kd = DistillConfig(temperature=2.0, alpha=0.5)
    tuned = distill(student, model, loader, loader, TrainConfig(epochs=1, optimizer="adamw", lr=1e-3), kd)
    assert math.isfinite(tuned.history[-1]["test_perplexity"])
