"""The 2:4 GPU path: converted on an Ampere+ GPU, and a clean no-op (same model, same outputs) elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_
from netsculpt.sparsity.gpu import is_two_four, semi_structured_support, to_semi_structured_

HAS_SPARSE_GPU = semi_structured_support("cuda") is None


def two_four_mlp() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32))
    mask_layers_(model, SparsityConfig(pattern="2:4"), 0.5)
    return remove_masks_(model).eval()


def test_is_two_four() -> None:
    model = two_four_mlp()
    assert is_two_four(model[0].weight) and is_two_four(model[2].weight)
    assert not is_two_four(torch.ones(4, 8))
    assert not is_two_four(torch.zeros(4, 6))  # inputs not a multiple of 4
    assert not is_two_four(torch.zeros(2, 4, 4))  # not a matrix


def test_cpu_device_is_refused_with_a_reason() -> None:
    reason = semi_structured_support("cpu")
    assert reason is not None and "not a CUDA GPU" in reason and "same outputs" in reason


@pytest.mark.skipif(HAS_SPARSE_GPU, reason="a 2:4-capable GPU is present: the fallback does not run")
def test_without_a_gpu_the_model_is_left_exactly_as_it_was() -> None:
    model = two_four_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 128)
    expected = model(x)
    for device in ("cpu", "cuda"):
        result = to_semi_structured_(model, device)
        assert result.converted == [] and result.skipped == {}
        assert result.reason is not None and "dense weights with zeros" in result.reason
    state = model.state_dict()
    assert all(torch.equal(state[k], v) and state[k].dtype == v.dtype for k, v in before.items())
    assert torch.equal(model(x), expected)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        to_semi_structured_(two_four_mlp(), "cpu", dtype=torch.float32)


@pytest.mark.skipif(not HAS_SPARSE_GPU, reason="needs an NVIDIA GPU of compute capability 8.0+")
def test_gpu_converts_two_four_linears_and_matches_dense() -> None:
    model = two_four_mlp()
    model.append(nn.Linear(32, 32))  # dense: skipped with a reason
    x = torch.randn(64, 128)
    dense = model.to("cuda", torch.float16)(x.to("cuda", torch.float16)).float()
    result = to_semi_structured_(model, "cuda")
    assert result.reason is None
    assert result.converted == ["0", "2"]
    assert "not 2:4" in result.skipped["3"]
    with torch.no_grad():
        out = model(x.to("cuda", torch.float16)).float()
    torch.testing.assert_close(out, dense, atol=2e-2, rtol=2e-2)
