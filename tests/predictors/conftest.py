"""The tiny trained CNN of the search tests, its search space and featuriser (built once per session)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.importance import get_criterion
from netsculpt.predictors import GraphFeatures
from netsculpt.search import SearchSpace
from tests.search import _tiny


@dataclass
class TinySpace:
    model: nn.Module
    example: torch.Tensor
    space: SearchSpace
    features: GraphFeatures


@pytest.fixture(scope="session")
def tiny_space() -> TinySpace:
    torch.set_num_threads(1)
    model, x = _tiny.trained_model(), _tiny.example()
    graph = ns.trace(model, x)
    space = SearchSpace(model, x, graph, get_criterion("l1").score(model, graph, None))
    return TinySpace(model, x, space, GraphFeatures(space, model))
