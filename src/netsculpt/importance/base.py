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

from netsculpt.errors import PruningError
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
    if isinstance(criterion, str):
        return CRITERIA.get(criterion)(**options)
    return criterion


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
                check_scores(g, s)
                scores[g.id] = s
        return scores

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        raise NotImplementedError


def check_scores(group: ChannelGroup, scores: np.ndarray) -> None:
    if scores.shape != (group.size,):
        raise PruningError(f"criterion returned {scores.shape} scores for group {group.id!r} of {group.size}")
    if not np.all(np.isfinite(scores)):
        raise PruningError(
            f"criterion produced NaN or inf scores for group {group.id!r}; check the model's weights and the "
            "calibration data for NaN/inf values"
        )


def producer_weights(group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> list:
    """The members that produce the channel: out-role weights of conv/linear-like layers (ndim >= 2),
    falling back to every out-role member (e.g. a group produced by a bare parameter)."""
    out = [m for m in group.members if m.role == "out" and tensors[m.name].dim() >= 2]
    return out or [m for m in group.members if m.role == "out"] or list(group.members)
