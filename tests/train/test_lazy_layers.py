"""Training or distilling with a model whose lazy layers have seen no input: refused with the fix.

netsculpt's trainer groups the parameters by shape for weight decay before the first batch, and its
checkpoints and teacher fingerprint read every weight: before, each failed with torch's raw
"Attempted to use an uninitialized parameter" ValueError (the teacher's forward would also have drawn
the teacher's weights at random). A plain torch loop materialises on its first batch; here the user runs
one forward first (the pipeline does it for a model it builds: tests/pipeline/test_lazy_model.py)."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.train import DistillationLoss, TrainConfig, distill, train
from tests._lazy import X, Y, assert_refused, materialised_lazy_net

DATA = [(X, Y)]
# built here: building draws weights, and the check asserts a refusal draws none
READY = materialised_lazy_net()
CALLS = {
    "train": (lambda m: train(m, DATA, DATA, TrainConfig(epochs=1)), "train"),
    "distill student": (lambda m: distill(m, READY, DATA, DATA, TrainConfig(epochs=1)), "distil into"),
    "distill teacher": (lambda m: distill(READY, m, DATA, DATA, TrainConfig(epochs=1)), "distil from"),
    "DistillationLoss teacher": (lambda m: DistillationLoss(m), "distil from"),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_training_with_a_lazy_model_is_refused_and_leaves_it_lazy(call: str) -> None:
    fn, verb = CALLS[call]
    assert_refused(fn, verb, ConfigError)


def test_once_materialised_it_trains() -> None:
    result = train(materialised_lazy_net(), DATA, DATA, TrainConfig(epochs=1))
    assert len(result.history) == 1
