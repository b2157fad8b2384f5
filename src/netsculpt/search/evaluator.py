"""Score one candidate: build its plan's pruned copy, optionally re-estimate BatchNorm, evaluate it.

This is the code that runs inside worker processes and Ray actors, so everything it needs travels in
one :class:`EvalTask` (the model, example inputs, trace options and the held-out batches as tensors) that
is shipped to each worker once (with the traced graph, so no worker traces again); a job is then only a
small dict of kept channels and a batch count.

With a dense ``task`` (``netsculpt.tasks``: detection, segmentation) a batch is whatever the task
collates (a list of images and a list of box dicts for a detector), a candidate is scored by the task's
metric (COCO mAP@[.5:.95], mIoU) in the accuracy slot with ``1 - metric`` as its loss, and BatchNorm
re-estimation runs the model in eval mode with only the norm layers in training mode: a detector in
training mode needs targets and returns losses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from netsculpt.errors import DataError
from netsculpt.graph import ChannelGraph, trace
from netsculpt.surgery import PrunePlan

Job = tuple[dict[str, list[int]], int]  # (kept channels per group, held-out batches to evaluate on)


@dataclass(frozen=True)
class Evaluation:
    """A candidate's score on ``samples`` held-out samples (accuracy in [0, 1], mean cross-entropy)."""

    accuracy: float
    loss: float
    samples: int

    def value(self, metric: str) -> float:
        """The number a search minimises: the loss, or the error rate."""
        return self.loss if metric == "loss" else 1.0 - self.accuracy

    def to_list(self) -> list[float]:
        return [self.accuracy, self.loss, self.samples]

    @classmethod
    def from_list(cls, data: list[float]) -> Evaluation:
        return cls(float(data[0]), float(data[1]), int(data[2]))


@dataclass
class EvalTask:
    """Everything a worker needs to score candidates; pickled once per worker (in memory, never a file)."""

    model: nn.Module
    example_inputs: Any
    batches: list[tuple[Tensor, Tensor]]
    bn_batches: list[Tensor] = field(default_factory=list)
    ignored: tuple[str, ...] = ()
    allow_inexact: bool = False
    graph: ChannelGraph | None = None  # the traced graph, so workers need not trace again
    task: Any = None  # a netsculpt.tasks.Task other than classification (None: classification)


def detached(value: Any) -> Any:
    """Tensors anywhere inside lists, tuples and dicts detached and cloned; other leaves as they are."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        return type(value)(detached(v) for v in value)
    if isinstance(value, dict):
        return {k: detached(v) for k, v in value.items()}
    return value


def tensor_leaves(value: Any) -> list[Tensor]:
    """Every tensor inside ``value`` (lists, tuples, dict values in key order), for fingerprints."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in tensor_leaves(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value, key=str) for t in tensor_leaves(value[k])]
    return []


def take_batches(loader: Iterable[Any], n: int, what: str) -> list[tuple[Any, Any]]:
    """The first ``n`` (inputs, targets) batches of ``loader``, copied: every candidate sees the same.
    Inputs and targets may be nested (a detector's list of images and list of box dicts)."""
    out = []
    for batch in itertools.islice(loader, n):
        if not isinstance(batch, list | tuple) or len(batch) < 2:
            raise DataError(
                f"the {what} loader must yield (inputs, labels) batches, got {type(batch).__name__}"
            )
        out.append((detached(batch[0]), detached(batch[1])))
    if not out:
        raise DataError(f"the {what} loader yielded no batches; check the dataset split")
    return out


def sample_inputs(loader: Iterable[Any], n_batches: int, seed: int = 0) -> list[Any]:
    """``n_batches`` input batches drawn from the loader's dataset with a fixed seed, not by iterating a
    (shuffled) loader: iterating advances its generator, so a second search in the same process — a
    resume — would see other batches. Loaders without a dataset are iterated. Pass unaugmented data:
    random augmentation makes the batches differ anyway. The loader's own ``collate_fn`` batches the
    samples, so a detection loader gives lists of images."""
    from torch.utils.data import default_collate

    dataset, batch_size = getattr(loader, "dataset", None), getattr(loader, "batch_size", None)
    collate = getattr(loader, "collate_fn", None) or default_collate
    if dataset is None or not batch_size or not hasattr(dataset, "__len__"):
        return [x for x, _ in take_batches(loader, n_batches, "training")]
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    out = []
    for b in range(n_batches):
        index = order[b * batch_size : (b + 1) * batch_size].tolist()
        if not index:
            break
        out.append(collate([dataset[i] for i in index])[0])
    if not out:
        raise DataError("the training loader's dataset is empty; check the dataset split")
    return out


def adapt_batchnorm_(model: nn.Module, inputs: list[Any], *, norms_only: bool = False) -> None:
    """Re-estimate every BatchNorm's running statistics on ``inputs`` (a cumulative average, no
    gradients), then leave the model in eval mode.

    ``norms_only``: run the model in eval mode with only its BatchNorm layers in training mode. Dense
    models need it: a torchvision detector in training mode asks for targets and returns losses, and
    dropout or a segmenter's auxiliary branch should not change what the norms see."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not inputs:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    if norms_only:
        model.eval()
        for m in norms:
            m.train()
    else:
        model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    model.eval()


def score_task(model: nn.Module, task: Any, batches: list[tuple[Any, Any]]) -> Evaluation:
    """A dense task's score: its headline metric (mAP@[.5:.95], mIoU) as the accuracy, ``1 - metric``
    as the loss (so ``metric="loss"`` and ``"error"`` rank candidates alike), samples counted by the task."""
    from netsculpt.train.evaluate import model_device

    device, accumulator = model_device(model), task.evaluator()
    model.eval()
    with torch.no_grad():  # no progress bar: a search scores hundreds of candidates
        for batch in batches:
            accumulator.update(model, *task.to_device(batch, device))
    value = float(accumulator.compute()[task.metric])
    samples = sum(task.batch_size(inputs, targets) for inputs, targets in batches)
    return Evaluation(value, 1.0 - value, samples)


class CandidateEvaluator:
    """Scores plans on a fixed set of held-out batches; the model is traced once, here."""

    def __init__(self, task: EvalTask, graph: ChannelGraph | None = None) -> None:
        self.task = task
        self.graph = (
            graph
            or task.graph
            or trace(task.model, task.example_inputs, ignored=task.ignored, allow_inexact=task.allow_inexact)
        )
        self.sizes = {g.id: g.size for g in self.graph.groups}

    def __call__(self, job: Job) -> Evaluation:
        from netsculpt.prune import apply_plan
        from netsculpt.train import evaluate

        keep, n_batches = job
        plan = PrunePlan(keep, self.sizes, {"allow_inexact": self.task.allow_inexact})
        model = apply_plan(self.task.model, plan, self.task.example_inputs, graph=self.graph)
        dense = self.task.task
        adapt_batchnorm_(model, self.task.bn_batches, norms_only=dense is not None)
        batches = self.task.batches[:n_batches]
        if dense is not None:
            return score_task(model, dense, batches)
        accuracy, loss = evaluate(model, batches)
        return Evaluation(accuracy, loss, sum(int(y.shape[0]) for _, y in batches))
