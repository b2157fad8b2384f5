"""The default loss: cross-entropy through the LossFn protocol, with label smoothing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netsculpt.train import CrossEntropy, LossFn


def test_label_smoothing_matches_its_definition() -> None:
    # With smoothing e over C classes the target is (1 - e) on the true class plus e / C everywhere, so
    # loss = (1 - e) * CE + e * mean_k(-log p_k). Checked against log-probs computed by hand.
    logits = torch.tensor([[4.0, 0.0, -2.0], [0.5, 1.0, 0.0]])
    targets = torch.tensor([0, 1])
    logp = logits.log_softmax(1)
    ce = -logp[torch.arange(2), targets].mean()
    uniform = -logp.mean(1).mean()
    model = nn.Identity()
    plain, out = CrossEntropy()(model, logits, targets)
    smoothed, _ = CrossEntropy(label_smoothing=0.1)(model, logits, targets)
    assert torch.equal(out, logits)
    assert plain.item() == pytest.approx(ce.item())
    assert smoothed.item() == pytest.approx(0.9 * ce.item() + 0.1 * uniform.item())
    # on confident, correct predictions smoothing must raise the loss (it penalises overconfidence)
    assert smoothed.item() > plain.item()


def test_smoothing_leaves_uniform_predictions_at_log_c() -> None:
    # every class has p = 1/C, so every target mix gives -log(1/C) = log 3
    logits = torch.zeros(4, 3)
    loss, _ = CrossEntropy(label_smoothing=0.3)(nn.Identity(), logits, torch.tensor([0, 1, 2, 0]))
    assert loss.item() == pytest.approx(math.log(3))


def test_cross_entropy_satisfies_the_protocol_and_checks_output_shape() -> None:
    assert isinstance(CrossEntropy(), LossFn)
    with pytest.raises(TypeError, match=r"\(batch, classes\) logits"):
        CrossEntropy()(nn.Identity(), torch.zeros(2, 3, 4), torch.tensor([0, 1]))
