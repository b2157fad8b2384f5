"""``language_modeling``: a causal LM's per-token logits, next-token cross-entropy, perplexity.

A causal language model (``LlamaForCausalLM``, ``GPT2LMHeadModel``, ...) returns ``(batch, seq, vocab)``
logits; the loss is the cross-entropy of position ``t``'s logits against token ``t + 1`` (the shift by one
Hugging Face applies when ``labels=input_ids``, and LLM-Pruner's calibration loss). Batches are token ids
in one of three forms (:func:`token_batch_kind`):

- a ``(batch, seq)`` integer tensor: every next token counts;
- ``(ids, labels)`` with ``labels`` of the same shape, equal to ``ids`` except ``-100`` at positions that do
  not count (Hugging Face's convention; the shift happens in the loss). Other per-token labels (a tagger's
  classes, labels already shifted) are refused: this is not the loss for them;
- a dict with ``input_ids`` and optionally ``attention_mask`` / ``labels``: the mask is passed to the model
  and its zeros (padding) count nowhere; other keys (``position_ids``) are passed to the model too.

``(ids, labels)`` with one label per sequence stays classification (a ``*ForSequenceClassification``
head); given per-token logits that pairing is refused with the reason (``CrossEntropy``, ``check_logits``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError, DataError, a_type
from netsculpt.logits import logits_of
from netsculpt.tasks.base import Task, move, register_task

IGNORE = -100  # Hugging Face's (and torch's default) ignore_index for labels that do not count
LM_FORMS = (
    "a (batch, seq) tensor of token ids, (ids, labels) with labels (batch, seq) equal to ids or -100, "
    "or a dict with input_ids (and attention_mask / labels)"
)


def _int(t: Any) -> bool:
    return (
        isinstance(t, Tensor) and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
    )


def token_batch_kind(batch: Any) -> str | None:
    """``"ids"``, ``"pair"`` or ``"dict"`` when ``batch`` is one of the language-modelling forms (module
    docstring), else None. Decided from the batch alone: integer ``(batch, seq)`` ids, and labels of the
    same shape; ``(ids, per-sequence labels)`` is None (classification)."""
    if _int(batch) and batch.dim() == 2:
        return "ids"
    if isinstance(batch, Mapping) and _int(batch.get("input_ids")) and batch["input_ids"].dim() == 2:
        return "dict"
    if isinstance(batch, list | tuple) and len(batch) == 2:
        ids, labels = batch
        if _int(ids) and ids.dim() == 2 and _int(labels) and labels.shape == ids.shape:
            return "pair"
    return None


def check_lm_labels(ids: Tensor, labels: Tensor) -> None:
    """Per-token labels must be the ids themselves (or -100): anything else is another task's labels."""
    counted = labels != IGNORE
    if not torch.equal(labels[counted], ids[counted]):
        raise DataError(
            f"the batch pairs ids {tuple(ids.shape)} with per-token labels {tuple(labels.shape)} that are "
            "not the ids: the language-modelling loss predicts each next input token, so labels must equal "
            f"input_ids except {IGNORE} where a token does not count (the shift by one happens in the loss). "
            "Per-token classes (tagging) or pre-shifted labels are not supported; for a padded batch pass "
            "a dict {'input_ids': ..., 'attention_mask': ...}"
        )


def split_token_batch(batch: Any) -> tuple[Tensor | dict[str, Tensor], Tensor]:
    """``(model inputs, labels)``: inputs are the ids or a dict for ``model(**inputs)`` (without labels);
    labels are ``(batch, seq)`` with ``-100`` where nothing is predicted (padding, ignored labels)."""
    kind = token_batch_kind(batch)
    if kind == "ids":
        return batch, batch
    if kind == "pair":
        ids, labels = batch
        check_lm_labels(ids, labels)
        return ids, labels
    if kind != "dict":
        raise DataError(f"a language-modelling batch is {LM_FORMS}; the loader yielded {a_type(batch)}")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    ids = inputs["input_ids"]
    labels = batch.get("labels", ids)
    if not _int(labels) or labels.shape != ids.shape:
        raise DataError(
            f"labels {a_type(labels)} must be integer token ids shaped like input_ids {tuple(ids.shape)}"
        )
    check_lm_labels(ids, labels)
    mask = inputs.get("attention_mask")
    if mask is not None:
        labels = labels.masked_fill(mask == 0, IGNORE)
    return inputs, labels


def run_lm(model: nn.Module, inputs: Tensor | Mapping[str, Tensor]) -> Tensor:
    """The ``(batch, seq, vocab)`` logits of ``model`` on ids or a dict of keyword inputs."""
    output = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    logits = logits_of(output)
    ids = inputs["input_ids"] if isinstance(inputs, Mapping) else inputs
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[:2] != ids.shape:
        got = f"shape {tuple(logits.shape)}" if isinstance(logits, Tensor) else a_type(logits)
        raise DataError(
            f"language modelling needs (batch, seq, vocab) logits for ids {tuple(ids.shape)}, the model "
            f"returned {got}; the batches are token ids ({LM_FORMS}), so pass a causal LM (or a model "
            "returning one logit vector per token), or one label per sequence for a classifier"
        )
    return logits


def shifted(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Position ``t``'s logits and token ``t + 1``, flattened: ``(tokens, vocab)`` and ``(tokens,)``."""
    vocab = logits.shape[-1]
    target = labels[:, 1:].reshape(-1)
    counted = target[target != IGNORE]
    if counted.numel() and (int(counted.min()) < 0 or int(counted.max()) >= vocab):
        raise DataError(
            f"token id {int(counted.max())} is out of range for a model with {vocab} logits a token"
        )
    return logits[:, :-1].reshape(-1, vocab), target


def next_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the counted tokens (0, still differentiable, when none count)."""
    flat, target = shifted(logits, labels)
    n = int((target != IGNORE).sum())
    total = F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum")
    return total / n if n else logits.sum() * 0.0


class _Perplexity:
    """Token-weighted sums, so batches of different padding (and shards) combine exactly."""

    def __init__(self) -> None:
        self.nll, self.tokens, self.correct = 0.0, 0, 0

    def update(self, model: nn.Module, inputs: Any, labels: Tensor) -> None:
        flat, target = shifted(run_lm(model, inputs), labels)
        counted = target != IGNORE
        self.nll += float(F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum"))
        self.tokens += int(counted.sum())
        self.correct += int((flat.argmax(-1)[counted] == target[counted]).sum())

    def compute(self) -> dict[str, float]:
        if self.tokens == 0:
            raise DataError("evaluate() got no predicted tokens; check the split, limit and attention masks")
        loss = self.nll / self.tokens
        return {
            "token_accuracy": self.correct / self.tokens,
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_token": loss / math.log(2),
            "tokens": float(self.tokens),
        }


@register_task("language_modeling")
class LanguageModeling(Task):
    """Causal language modelling: next-token cross-entropy; scored by perplexity and token accuracy.

    The headline ``metric`` is next-token accuracy because callers rank by it (higher is better: early
    stopping, searches); ``evaluate`` also returns ``perplexity`` = exp(mean loss per token), ``loss``
    (nats per token), ``bits_per_token`` and ``tokens``.
    """

    metric = "token_accuracy"
    per_image_labels = False
    distributed = False

    def to_device(self, batch: Any, device: torch.device) -> tuple[Any, Tensor]:
        inputs, labels = split_token_batch(batch)
        return move(inputs, device), labels.to(device)

    def batch_size(self, inputs: Any, targets: Any) -> int:
        return int(targets.shape[0])

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)

    def loss(self, model: nn.Module, inputs: Any, targets: Tensor) -> tuple[Tensor, Tensor]:
        logits = run_lm(model, inputs)
        return next_token_loss(logits, targets), logits

    def evaluator(self) -> _Perplexity:
        return _Perplexity()

    def distillation_loss(self, teacher: nn.Module, config: Any, **hints: Any) -> Any:
        from netsculpt.tasks.lm_distill import TokenDistillationLoss

        if config is not None and getattr(config, "mixup", 0):
            raise ConfigError("mixup mixes images; token ids cannot be mixed: set mixup=0")
        return TokenDistillationLoss(self, teacher, config, **hints)
