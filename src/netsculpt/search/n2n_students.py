"""N2N's students: what the policies read, how an action becomes a smaller model, and what it is worth.

A student is the teacher with some residual blocks removed (:func:`netsculpt.depth.remove_blocks`, exact:
the block becomes its shortcut) and every channel group cut to a width (:func:`netsculpt.prune.apply_plan`
with the search space's criterion-chosen channels). Widths are applied first, on the teacher's traced
graph, then the blocks go; the two compose exactly (tests/depth). No new surgery lives here.

Its reward (Ashok et al. 2018, eq. 4): ``R = C (2 - C) * A_student / A_teacher`` with ``C`` the relative
compression (1 - the student's cost fraction, in the target's metric: MACs or params). ``A_student`` is
measured after a short distillation from the teacher (``kd_steps`` fixed training batches, the same for
every student), then BatchNorm re-estimation on those batches (the cheap scorer's step: after 20 steps the
running statistics lag the moved weights, and a resnet56 student scored at chance without it), on batches
held out of the *training* split. A student over the budget gets ``R = -1`` without being trained (the
paper's hard-constraint reward).

:meth:`StudentSpace.fill` makes a student use the budget (AMC-style): the actions give the *shape* (which
blocks go, how the remaining groups' keep fractions relate), and one factor scales the remaining groups'
fractions so the student's cost lands within ``tolerance`` under the target; without it a sampled student
far under the budget won on its compression term alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import ConfigError, DataError
from netsculpt.graph.builder import ROLE_OUT
from netsculpt.search.budget_fit import bisect_scale, grow_to_budget
from netsculpt.search.space import SearchSpace

CONSTRAINT_REWARD = -1.0
BLOCK_FEATURES = 7  # per removable block: position, in/out channels, stride, MAC and param share, projection


def n2n_reward(compression: float, accuracy: float, teacher_accuracy: float) -> float:
    """``C (2 - C) * A_s / A_t``: grows with compression, scaled by the accuracy the student keeps."""
    if teacher_accuracy <= 0:
        raise DataError("the teacher scores 0% on the held-out batches: N2N's reward is a ratio to it")
    c = float(np.clip(compression, 0.0, 1.0))
    return c * (2.0 - c) * accuracy / teacher_accuracy


def _inside(module: str, block: str) -> bool:
    return module == block or module.startswith(block + ".")


def _normalise(columns: np.ndarray) -> np.ndarray:
    """Each column scaled to [-1, 1]; no rows (a model without removable blocks) is no rows, not an error."""
    if columns.shape[0] == 0:
        return columns
    top = np.abs(columns).max(axis=0)
    return columns / np.where(top > 0, top, 1.0)


class StudentSpace:
    """The removable blocks and channel groups of one teacher, their descriptors, and students."""

    def __init__(self, space: SearchSpace, example_inputs: Any, metric: str) -> None:
        from netsculpt.depth.api import block_macs
        from netsculpt.measure.macs import count_params
        from netsculpt.search.amc import GroupWalkSpace

        if metric not in ("macs", "params"):
            raise ConfigError(
                f"N2N's compression term is a fraction of MACs or parameters, not {metric!r}: "
                "give a macs= or params= target"
            )
        self.space, self.example, self.metric = space, example_inputs, metric
        self.model = space.model
        self.units = [u for u in space.graph.blocks if u.removable]
        self.names = [u.name for u in self.units]
        self.full_cost = self._measure(self.model)
        modules = dict(self.model.named_modules())
        _, saved = block_macs(self.model, example_inputs, self.units)
        total_macs = max(self.full_cost["macs"], 1)
        rows = []
        for i, u in enumerate(self.units):
            skip = f"{u.name}.{u.shortcut}" if u.shortcut else None
            layers = [
                m
                for n, m in modules.items()
                if _inside(n, u.name)
                and isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear)
                and not (skip and _inside(n, skip))
            ]
            first, last = (layers[0], layers[-1]) if layers else (None, None)
            params = count_params(modules[u.name]) - (count_params(modules[skip]) if skip else 0)
            rows.append(
                [
                    i / max(len(self.units) - 1, 1),
                    float(getattr(first, "in_channels", getattr(first, "in_features", 0)) or 0),
                    float(getattr(last, "out_channels", getattr(last, "out_features", 0)) or 0),
                    float(np.prod(getattr(first, "stride", (1,)))),
                    saved[u.name] / total_macs,
                    params / max(self.full_cost["params"], 1),
                    1.0 if u.shortcut else 0.0,
                ]
            )
        block_rows = np.array(rows, dtype=np.float64).reshape(len(rows), BLOCK_FEATURES)
        self.block_x = torch.tensor(_normalise(block_rows), dtype=torch.float32)
        walk = GroupWalkSpace(space, self.model, metric)
        position = np.arange(len(space)) / max(len(space) - 1, 1)
        groups = np.column_stack([position, _normalise(walk.features())])
        self.group_x = torch.tensor(groups, dtype=torch.float32)
        self.owners = [
            sorted({m.module for m in g.members if m.role == ROLE_OUT}) for g in space.groups
        ]  # the modules whose output channels each group cuts
        self.tensor_modules = [n.rpartition(".")[0] for n, _ in self.model.named_parameters()]

    # -- descriptors ---------------------------------------------------------------------------------
    def active_groups(self, removed: Iterable[str]) -> list[int]:
        """Groups with a producing layer outside the removed blocks: the ones worth shrinking."""
        removed = list(removed)
        return [
            i
            for i, owners in enumerate(self.owners)
            if not owners or any(not any(_inside(o, b) for b in removed) for o in owners)
        ]

    def removed(self, keep: list[int]) -> list[str]:
        return [name for name, k in zip(self.names, keep) if not k]

    # -- students ------------------------------------------------------------------------------------
    def counts(self, fractions: dict[int, float]) -> np.ndarray:
        """Widths: each listed group at its keep fraction (clipped to the space), the rest in full."""
        ratios = np.ones(len(self.space))
        for i, f in fractions.items():
            ratios[i] = f
        return self.space.from_ratios(ratios)

    def build(self, removed: list[str], counts: np.ndarray) -> nn.Module:
        """The teacher cut to ``counts`` with ``removed`` blocks gone (a new model; the teacher is
        untouched)."""
        from netsculpt.depth import remove_blocks
        from netsculpt.prune import apply_plan

        student = self.model
        if np.any(counts < self.space.sizes):
            student = apply_plan(self.model, self.space.plan(counts), self.example, graph=self.space.graph)
        specs = [u.to_dict() for u in self.units if u.name in set(removed)]
        if specs:
            student = remove_blocks(student, specs)
        elif student is self.model:
            import copy

            student = copy.deepcopy(self.model)
        return student

    def predict(self, removed: Iterable[str], counts: np.ndarray) -> float:
        """The student's cost fraction in ``metric`` without building it: the space's exact per-tensor
        counts, minus the tensors of removed blocks (their shortcut stays). Exact for params; for MACs the
        removed blocks' parameter-free MACs (adds, activations) are still counted."""
        counted = self.space._counted
        gone = {
            u.name: f"{u.name}.{u.shortcut}" if u.shortcut else None
            for u in self.units
            if u.name in set(removed)
        }
        keep = np.array(
            [
                not any(_inside(m, b) and not (skip and _inside(m, skip)) for b, skip in gone.items())
                for m in self.tensor_modules
            ],
            dtype=np.float64,
        )
        numels = counted.numels(np.asarray(counts)) * keep
        if self.metric == "macs":
            return float(counted.fixed + counted.rates @ numels) / counted.base_macs
        return float(numels.sum()) / counted.base_params

    def fill(
        self, removed: list[str], fractions: dict[int, float], value: float, tolerance: float = 0.02
    ) -> tuple[np.ndarray, str]:
        """Widths with the listed groups' keep ``fractions`` scaled by one factor (found by bisection, then
        single steps given back) so the student costs at most ``value`` and within ``tolerance`` of it.

        Returns the widths and ``"ok"``, ``"under"`` (even full widths cost less than ``value``: the removed
        blocks alone overshoot the budget) or ``"over"`` (the narrowest widths still cost more)."""
        shape = np.ones(len(self.space))
        idx = np.array(sorted(fractions), dtype=np.int64)
        if idx.size == 0:
            counts = self.space.full()
            return counts, "ok" if self.predict(removed, counts) <= value else "over"
        shape[idx] = np.clip([fractions[i] for i in idx], 1e-6, 1.0)

        def widths(scale: float) -> np.ndarray:
            ratios = shape.copy()
            ratios[idx] = np.minimum(shape[idx] * scale, 1.0)
            return self.space.from_ratios(ratios)

        top = widths(1.0 / float(shape[idx].min()))
        if self.predict(removed, top) <= value:
            return top, "ok" if self.predict(removed, top) >= value * (1 - tolerance) else "under"
        low = widths(0.0)
        if self.predict(removed, low) > value:
            return low, "over"
        best = bisect_scale(
            widths, lambda c: self.predict(removed, c), value, 1.0 / float(shape[idx].min()), low
        )
        # give steps back where the student falls furthest short of its shape first
        shortfall = shape[idx] * self.space.sizes[idx] - best[idx]
        order = [int(i) for i in idx[np.argsort(-shortfall, kind="stable")]]
        filled = grow_to_budget(
            best, lambda c: self.predict(removed, c), value, tolerance, order, self.space.next_width
        )
        return filled, "ok"

    def _measure(self, model: nn.Module) -> dict[str, int]:
        from netsculpt.measure.macs import count_macs, count_params

        return {"macs": int(count_macs(model, self.example)[0]), "params": int(count_params(model))}

    def cost(self, student: nn.Module) -> dict[str, float]:
        """The student's MACs and params as fractions of the teacher's."""
        measured = self._measure(student)
        return {k: measured[k] / max(self.full_cost[k], 1) for k in ("macs", "params")}


def fixed_batches(loader: Any, n: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """``n`` labelled training batches drawn from the loader's dataset with a fixed seed (every student
    is distilled on the same images; iterating the shuffled loader would advance its generator)."""
    from torch.utils.data import default_collate

    from netsculpt.search.evaluator import take_batches

    dataset, batch_size = getattr(loader, "dataset", None), getattr(loader, "batch_size", None)
    if dataset is None or not batch_size or not hasattr(dataset, "__len__"):
        return take_batches(loader, n, "training")
    gen = torch.Generator().manual_seed(seed)
    out: list[tuple[Tensor, Tensor]] = []
    order = torch.randperm(len(dataset), generator=gen)
    for b in range(n):
        start = (b * batch_size) % len(dataset)
        if start + batch_size > len(dataset):
            order = torch.randperm(len(dataset), generator=gen)
        index = order[start : start + batch_size].tolist()
        x, y = default_collate([dataset[i] for i in index])[:2]
        out.append((x, y))
    if not out:
        raise DataError("the training loader's dataset is empty; N2N distils each student on it")
    return out


def distil_and_score(
    student: nn.Module,
    teacher: nn.Module,
    kd_batches: list[tuple[Tensor, Tensor]],
    held: list[tuple[Tensor, Tensor]],
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> tuple[float, float]:
    """Distil ``student`` in place on ``kd_batches`` (netsculpt.train.distill, no files, no bars),
    re-estimate its BatchNorm statistics on those batches' inputs, then its (accuracy, loss) on the
    held-out ``held`` batches."""
    from netsculpt import progress
    from netsculpt.search.evaluator import adapt_batchnorm_
    from netsculpt.train import TrainConfig, distill, evaluate

    config = TrainConfig.preset(
        "finetune", epochs=epochs, lr=lr, seed=seed, augment=False, batch_size=int(kd_batches[0][1].shape[0])
    )
    was = progress.is_quiet_requested()
    progress.set_quiet(True)  # a bar per student would fight the search's own bar
    try:
        distill(student, teacher, kd_batches, held[:1], config)  # "test" = held-out training data
        adapt_batchnorm_(student, [x for x, _ in kd_batches])
        accuracy, loss = evaluate(student, held)
    finally:
        progress.set_quiet(was)
    return float(accuracy), float(loss)
