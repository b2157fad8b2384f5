"""The loss seam: a loss sees the model and the inputs, not only the logits.

Knowledge distillation needs the inputs to run a teacher, and some losses add terms from the model
itself (regularisers on BN scales, for instance), so the protocol hands over ``(model, inputs, targets)``
and gets back ``(loss, logits)``; the logits are returned so accuracy is counted without a second pass.

Two optional attributes let a loss carry state of its own (the distillation loss uses both):

- ``learnable``: an ``nn.Module`` whose parameters are trained with the model (hint adapters). The loop
  adds them to the optimizer, averages their gradients across ranks, and checkpoints them, but saves
  only the model at the end.
- ``recipe()``: plain data describing the loss (its settings, a teacher fingerprint), stored in every
  checkpoint; resuming with a loss whose recipe differs is refused.
- ``runtime_state()`` / ``load_runtime_state(state)``: counters and running statistics that are not
  parameters (the GPP push loss's step parity and class centroids), as plain data and tensors; stored in
  every checkpoint (per rank when distributed) and put back on resume and rollback, so both are exact.

Under distributed training the loss receives the ``DistributedDataParallel`` wrapper as ``model`` (call
it for the forward pass; ``model.module`` is the model itself).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.logits import logits_of


@runtime_checkable
class LossFn(Protocol):
    """``loss_fn(model, inputs, targets) -> (mean loss over the batch, logits)``."""

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]: ...


class CrossEntropy:
    """Cross-entropy on the model's logits, with optional label smoothing (the default training loss)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        logits = logits_of(model(inputs))  # a Hugging Face ModelOutput: its .logits
        if isinstance(logits, torch.Tensor) and logits.dim() == 3 and targets.dim() == 1:
            raise TypeError(
                f"CrossEntropy expects (batch, classes) logits; the model returns per-token logits "
                f"{tuple(logits.shape)} (a language model?) but the "
                f"targets {tuple(targets.shape)} are one class per sequence: cross-entropy cannot pair "
                "them. For next-token loss give token batches (ids, (ids, labels = ids or -100), or a dict "
                "with input_ids); for sequence classes use a *ForSequenceClassification head"
            )
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise TypeError(
                f"CrossEntropy expects the model to return (batch, classes) logits, got {shape}; "
                "pass a loss_fn that reduces the model's output"
            )
        loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        return loss, logits

    def __repr__(self) -> str:
        return f"CrossEntropy(label_smoothing={self.label_smoothing})"
