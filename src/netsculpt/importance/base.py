"""Channel importance: a registry of criteria, each scoring every channel of a ChannelGroup.

A criterion declares what it needs (weights only, activations, gradients, labels) so the framework can
collect data-driven statistics in one pass before scoring. Scores are "higher = keep".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from netsculpt.errors import NetsculptWarning, PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.registry import Registry

WEIGHTS = "weights"
ACTIVATIONS = "activations"
GRADIENTS = "gradients"
LABELS = "labels"


class Criterion(Protocol):
    """Scores channels; ``needs`` lists what beyond weights it must see."""

    needs: frozenset[str]

    def score(
        self, model: nn.Module, graph: ChannelGraph, data: Iterable[Any] | None
    ) -> dict[str, np.ndarray]:
        """One score per channel for every prunable group (higher = more important)."""
        ...


CRITERIA: Registry[Callable[..., Criterion]] = Registry("criterion")


def register_criterion(name: str) -> Callable:
    """Register a criterion factory (a class or function taking keyword options)."""
    return CRITERIA.register(name)  # type: ignore[return-value]


def list_criteria() -> list[str]:
    return CRITERIA.names()


def get_criterion(criterion: str | Criterion, **options: Any) -> Criterion:
    """A registered criterion by name, or ``criterion`` itself when it is one (``needs`` and ``score``)."""
    if isinstance(criterion, str):
        crit = CRITERIA.get(criterion)(**options)
        crit.name = criterion  # for messages: "hrel", not the class name
        return crit
    if not (
        isinstance(getattr(criterion, "needs", None), frozenset | set)
        and callable(getattr(criterion, "score", None))
    ):
        from netsculpt.checks import refuse

        raise refuse(
            "criterion",
            criterion,
            f"a registered name ({', '.join(list_criteria())}) or an object with .needs and .score()",
            error=PruningError,
        )
    return criterion


def criterion_name(criterion: object) -> str:
    """The registered name a criterion was created under, else its class name."""
    return str(getattr(criterion, "name", type(criterion).__name__))


@dataclass
class WeightCriterion:
    """Base for criteria that only read parameters: score each group from its member slices."""

    needs: frozenset[str] = frozenset({WEIGHTS})

    def score(
        self, model: nn.Module, graph: ChannelGraph, data: Iterable[Any] | None = None
    ) -> dict[str, np.ndarray]:
        tensors = dict(model.named_parameters())
        tensors.update(dict(model.named_buffers()))
        scores = {}
        with torch.no_grad():
            for g in graph.prunable_groups:
                s = self.group_scores(g, tensors)
                check_scores(g, s, criterion_name(self))
                scores[g.id] = s
        return scores

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        raise NotImplementedError


def check_scores(group: ChannelGroup, scores: np.ndarray, criterion: str = "criterion") -> None:
    """Shape and NaN checks (errors); a warning when every channel of a group scores the same."""
    if scores.shape != (group.size,):
        raise PruningError(
            f"{criterion} returned {scores.shape} scores for group {group.id!r} of {group.size} channels"
        )
    if not np.all(np.isfinite(scores)):
        raise PruningError(
            f"{criterion} produced NaN or inf scores for group {group.id!r}; check the model's weights and "
            "the calibration data for NaN/inf values"
        )
    if group.size > 1 and float(np.ptp(scores)) <= 1e-9 * max(float(np.abs(scores).max()), 1e-3):
        warn_user(
            f"{criterion} gave every channel of group {group.id!r} the same score ({float(scores[0]):.4g}; "
            "e.g. every filter is dead on the calibration data), so it cannot tell them apart: the "
            "lowest-numbered channels are kept there. Check the calibration data, or prune that group by "
            "weights (criterion='l1') or leave it out (ignored=[...])",
            NetsculptWarning,
        )


def producer_weights(group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> list:
    """The members that produce the channel: out-role weights of conv/linear-like layers (ndim >= 2),
    falling back to every out-role member (e.g. a group produced by a bare parameter)."""
    out = [m for m in group.members if m.role == "out" and tensors[m.name].dim() >= 2]
    return out or [m for m in group.members if m.role == "out"] or list(group.members)
