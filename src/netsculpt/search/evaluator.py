"""Score one candidate: build its plan's pruned copy, optionally re-estimate BatchNorm, evaluate it.

This is the code that runs inside worker processes and Ray actors, so everything it needs travels in
one :class:`EvalTask` (the model, example inputs, trace options and the held-out batches as tensors) that
is shipped to each worker once (with the traced graph, so no worker traces again); a job is then only a
small dict of kept channels and a batch count.
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


def take_batches(loader: Iterable[Any], n: int, what: str) -> list[tuple[Tensor, Tensor]]:
    """The first ``n`` (inputs, labels) batches of ``loader`` as tensors: every candidate sees the same."""
    out = []
    for batch in itertools.islice(loader, n):
        if not isinstance(batch, list | tuple) or len(batch) < 2:
            raise DataError(
                f"the {what} loader must yield (inputs, labels) batches, got {type(batch).__name__}"
            )
        out.append((batch[0].detach().clone(), batch[1].detach().clone()))
    if not out:
        raise DataError(f"the {what} loader yielded no batches; check the dataset split")
    return out


def sample_inputs(loader: Iterable[Any], n_batches: int, seed: int = 0) -> list[Tensor]:
    """``n_batches`` input batches drawn from the loader's dataset with a fixed seed, not by iterating a
    (shuffled) loader: iterating advances its generator, so a second search in the same process — a
    resume — would see other batches. Loaders without a dataset are iterated. Pass unaugmented data:
    random augmentation makes the batches differ anyway."""
    from torch.utils.data import default_collate

    dataset, batch_size = getattr(loader, "dataset", None), getattr(loader, "batch_size", None)
    if dataset is None or not batch_size or not hasattr(dataset, "__len__"):
        return [x for x, _ in take_batches(loader, n_batches, "training")]
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    out = []
    for b in range(n_batches):
        index = order[b * batch_size : (b + 1) * batch_size].tolist()
        if not index:
            break
        out.append(default_collate([dataset[i] for i in index])[0])
    if not out:
        raise DataError("the training loader's dataset is empty; check the dataset split")
    return out


def adapt_batchnorm_(model: nn.Module, inputs: list[Tensor]) -> None:
    """Re-estimate every BatchNorm's running statistics on ``inputs`` (a cumulative average, no
    gradients), then leave the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not inputs:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    model.eval()


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
        adapt_batchnorm_(model, self.task.bn_batches)
        batches = self.task.batches[:n_batches]
        accuracy, loss = evaluate(model, batches)
        return Evaluation(accuracy, loss, sum(int(y.shape[0]) for _, y in batches))
