"""Scoring helpers: fixed BatchNorm batches whatever the loader's state, and adaptive BN itself."""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.search.evaluator import (
    CandidateEvaluator,
    EvalTask,
    adapt_batchnorm_,
    sample_inputs,
    take_batches,
)


def test_sampled_batches_ignore_the_loader_position(tiny) -> None:
    first = sample_inputs(tiny.train, 2, seed=0)
    next(iter(tiny.train))  # iterating a shuffled loader advances its generator ...
    again = sample_inputs(tiny.train, 2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # ... but not the sampled batches
    assert len(first) == 2 and first[0].shape[0] == tiny.train.batch_size


def test_adapted_statistics_are_the_exact_batch_statistics() -> None:
    """momentum=None makes BatchNorm keep a cumulative average: one batch gives its exact mean/var."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    x = torch.randn(16, 3, 5, 5)
    adapt_batchnorm_(model, [x])
    features = model[0](x)
    assert torch.allclose(model[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(model[1].running_var, features.var(dim=(0, 2, 3), unbiased=True), atol=1e-5)
    assert not model.training


def test_evaluator_scores_the_pruned_copy_only(tiny) -> None:
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    task = EvalTask(
        tiny.model, tiny.example, take_batches(tiny.val, 2, "held-out"), sample_inputs(tiny.train, 1)
    )
    evaluator = CandidateEvaluator(task)
    result = evaluator(({"conv2": list(range(8))}, 1))
    assert result.samples == tiny.val.batch_size
    assert 0.0 <= result.accuracy <= 1.0
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())  # original untouched
