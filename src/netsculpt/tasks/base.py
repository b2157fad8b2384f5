"""What a task tells the rest of netsculpt: how to batch, what to minimise, how to score, what to distil.

Training, distillation, the gradient criteria and the report were written for image classification
(one label per image, cross-entropy, top-1). A :class:`Task` is the one place that knows otherwise, so
those parts ask it instead of assuming labels: ``classification`` keeps every behaviour they had, and
``detection`` / ``segmentation`` plug torchvision's detector losses, COCO mAP and mIoU into the same
loops. Tasks are registered by name (``get_task("detection")``; recipes say ``task: detection``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from netsculpt.errors import DataError, a_type
from netsculpt.modes import module_modes, restore_modes, set_training
from netsculpt.registry import Registry


class Task:
    """Base: classification semantics. Subclasses override what differs.

    ``metric`` names the headline evaluation number (the key :meth:`evaluate` returns first, reported as
    the run's "accuracy"); ``per_image_labels`` says whether a batch's targets are one class per image
    (what ``hrel`` and other label-kernel criteria need).
    """

    name: ClassVar[str] = "task"
    metric: ClassVar[str] = "accuracy"
    per_image_labels: ClassVar[bool] = True
    distributed: ClassVar[bool] = True  # its metric adds up exactly across data-parallel shards

    def collate(self, batch: list[Any]) -> Any:
        """The ``collate_fn`` for a DataLoader over this task's samples."""
        return torch.utils.data.default_collate(batch)

    def to_device(self, batch: Any, device: torch.device) -> tuple[Any, Any]:
        """``(inputs, targets)`` of one batch, on ``device``."""
        if not isinstance(batch, list | tuple) or len(batch) < 2:
            raise DataError(f"each batch must be (inputs, targets); the loader yielded {a_type(batch)}")
        return move(batch[0], device), move(batch[1], device)

    def batch_size(self, inputs: Any, targets: Any) -> int:
        return len(inputs) if isinstance(inputs, list | tuple) else int(inputs.shape[0])

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        """The model's output on one batch's inputs (a language model takes a dict as keywords)."""
        return model(inputs)

    def loss(self, model: nn.Module, inputs: Any, targets: Any) -> tuple[Tensor, Any]:
        """The training loss of one batch and the model's output (a :data:`netsculpt.train.LossFn`)."""
        raise NotImplementedError

    def calibration_loss(self, model: nn.Module, inputs: Any, targets: Any) -> Tensor:
        """The loss the gradient criteria (taylor, fisher) differentiate; ``model`` is in eval mode."""
        return self.loss(model, inputs, targets)[0]

    def evaluator(self) -> Any:
        """A fresh accumulator: ``update(model, inputs, targets)``, then ``compute() -> dict``."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader: Iterable[Any], *, max_batches: int | None = None) -> dict:
        """Metrics of ``model`` on ``loader`` (eval mode, no gradients; the mode is restored)."""
        from netsculpt.progress import track
        from netsculpt.train.evaluate import model_device

        device, modes = model_device(model), module_modes(model)
        acc = self.evaluator()
        set_training(model, False)
        try:
            with torch.no_grad():
                for i, batch in enumerate(track(loader, f"evaluate ({self.name})")):
                    if max_batches is not None and i >= max_batches:
                        break
                    inputs, targets = self.to_device(batch, device)
                    acc.update(model, inputs, targets)
        finally:
            restore_modes(modes)
        return acc.compute()

    def distillation_loss(self, teacher: nn.Module, config: Any, **hints: Any) -> Any:
        """The :data:`LossFn` that distils ``teacher`` into the trained model (see ``tasks/distill.py``);
        ``hints``: ``student``, ``example_inputs`` and ``seed`` to size feature-hint adapters."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def move(value: Any, device: torch.device) -> Any:
    """Tensors anywhere inside lists, tuples and dicts, moved; other leaves as they are."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(move(v, device) for v in value)
    if isinstance(value, dict):
        return {k: move(v, device) for k, v in value.items()}
    return value


TASKS: Registry[type[Task]] = Registry("task")


def register_task(name: str):
    """Class decorator: register a :class:`Task` subclass under ``name``."""

    def add(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS.register(name, cls)
        return cls

    return add


def get_task(task: str | Task | None = None, **options: Any) -> Task:
    """A task by name (``None``: classification), or ``task`` itself when it already is one."""
    if isinstance(task, Task):
        return task
    if task is not None and not isinstance(task, str):
        from netsculpt.checks import refuse

        raise refuse("task", task, f"a task name ({', '.join(list_tasks())}), a Task, or None")
    return TASKS.get(task or "classification")(**options)


def list_tasks() -> list[str]:
    return TASKS.names()
