"""Evaluation and the small batch helpers the training loop shares with it."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor, nn

from netsculpt.errors import DataError, a_type
from netsculpt.modes import module_modes, restore_modes
from netsculpt.train.losses import CrossEntropy, LossFn


class LMEvaluation(tuple):
    """What :func:`evaluate` returns for a causal language model: the usual ``(accuracy, loss)`` pair, here
    next-token accuracy and mean cross-entropy per predicted token (nats), with ``perplexity``
    (exp of that loss), ``tokens`` and ``metrics`` (every number, named) as attributes."""

    metrics: dict[str, float]

    def __new__(cls, metrics: dict[str, float]) -> LMEvaluation:
        self = super().__new__(cls, (metrics["token_accuracy"], metrics["loss"]))
        self.metrics = {"task": "language_modeling", **metrics}  # type: ignore[dict-item]
        return self

    @property
    def perplexity(self) -> float:
        return self.metrics["perplexity"]

    @property
    def tokens(self) -> int:
        return int(self.metrics["tokens"])

    def __repr__(self) -> str:
        acc, loss = self
        return f"LMEvaluation(token_accuracy={acc:.4f}, loss={loss:.4f}, perplexity={self.perplexity:.3f})"


def evaluate(
    model: nn.Module, loader: Any, *, loss_fn: LossFn | None = None, max_batches: int | None = None
) -> tuple[float, float]:
    """Top-1 accuracy and the sample-weighted mean loss of ``model`` over ``loader`` (or its first batches).

    Runs in eval mode without gradients and puts the model back in the mode it was in. When the batches
    are token ids (``netsculpt.tasks.language_model.token_batch_kind``) and no ``loss_fn`` is given, the
    model is scored as a causal LM: an :class:`LMEvaluation` (next-token accuracy, nats per token, and
    ``.perplexity``).
    """
    if loss_fn is None:
        from netsculpt.tasks.language_model import LanguageModeling, token_batch_kind

        batches = iter(itertools.islice(loader, max_batches))
        first = next(batches, None)
        if token_batch_kind(first) is not None:
            return LMEvaluation(LanguageModeling().evaluate(model, itertools.chain([first], batches)))
        loader, max_batches = ([] if first is None else itertools.chain([first], batches)), None
    correct, seen, loss_sum = evaluate_sums(model, loader, loss_fn=loss_fn, max_batches=max_batches)
    if seen == 0:
        raise DataError("evaluate() got a loader that yielded no samples; check the dataset split and limit")
    return correct / seen, loss_sum / seen


def evaluate_sums(
    model: nn.Module, loader: Any, *, loss_fn: LossFn | None = None, max_batches: int | None = None
) -> tuple[int, int, float]:
    """``(correct, samples, summed loss)``: sums, so shards evaluated on several ranks add up exactly."""
    loss_fn = loss_fn or CrossEntropy()
    device = model_device(model)
    modes = module_modes(model)
    model.eval()
    correct, seen, loss_sum = 0, 0, 0.0
    try:
        with torch.no_grad():
            for batch in itertools.islice(loader, max_batches):
                inputs, targets = unpack(batch, device)
                loss, logits = loss_fn(model, inputs, targets)
                n = int(targets.shape[0])
                correct += count_correct(logits, targets)
                loss_sum += float(loss) * n
                seen += n
    finally:
        restore_modes(modes)
    return correct, seen, loss_sum


def num_batches(loader: Any) -> int:
    try:
        n = len(loader)
    except TypeError:
        raise DataError(
            "the training loader has no length; netsculpt.train needs len(loader) to lay out the "
            "learning-rate schedule (use a map-style dataset or give the sampler a length)"
        ) from None
    if n == 0:
        raise DataError("the training loader is empty; check the dataset split, limit and batch size")
    return n


def unpack(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise DataError(f"each batch must be (inputs, targets); the loader yielded {a_type(batch)}")
    inputs, targets = batch[0], batch[1]
    return inputs.to(device), targets.to(device)


def count_correct(logits: Tensor, targets: Tensor) -> int:
    labels = targets.argmax(1) if targets.dim() == 2 else targets
    return int((logits.argmax(1) == labels).sum())


def model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")
