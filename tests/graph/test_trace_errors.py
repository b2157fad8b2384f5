"""A forward that fails under ``ns.trace``: the error says whether the model fails on these inputs by
itself (its own error) or only under netsculpt's trace (netsculpt/graph/trace_errors.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import TraceError


class _NeedsFourDims(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.dim() != 4:
            raise ValueError(f"expected a 4D batch, got {tuple(x.shape)}")
        return self.conv(x)


class _FailsOnlyUnderAMode(nn.Module):
    """Stands for a model netsculpt's trace breaks: it fails only while a torch function mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch._C._len_torch_function_stack() > 0:
            raise RuntimeError("cannot run under a function mode")
        return self.conv(x)


def test_a_model_failing_by_itself_is_told_so_with_its_own_error() -> None:
    model = _NeedsFourDims()
    with pytest.raises(TraceError) as info:
        ns.trace(model, torch.randn(3, 8, 8))
    message = str(info.value)
    assert "the model itself fails on the example inputs (shapes" in message
    assert "outside netsculpt too: model(*example_inputs) raises ValueError: expected a 4D batch" in message
    assert "Check example_inputs has the shape" not in message
    assert model.calls == 0  # the untraced run is undone like the traced one


def test_a_model_that_runs_by_itself_is_not_told_to_check_its_inputs() -> None:
    with pytest.raises(TraceError) as info:
        ns.trace(_FailsOnlyUnderAMode(), torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert (
        "the model runs on the example inputs (shapes (1, 3, 8, 8) float32) by itself, but failed" in message
    )
    assert "RuntimeError: cannot run under a function mode. This is a netsculpt limitation" in message
    assert "Check example_inputs" not in message


def test_a_broken_hugging_face_config_is_named_as_the_models_own_failure() -> None:
    """Position embeddings for 4 tokens and 8 token ids: BERT fails the same way without netsculpt."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100,
        max_position_embeddings=4,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        TraceError, match=r"the model itself fails on the example inputs .* outside netsculpt too"
    ):
        ns.trace(model, ids)
