"""DKM: soft assignments, gradients, chunking, snapping to the hard palette, layouts, bad configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.weights import DKMConfig, dkm_layers, iter_palettes, prepare_dkm_, snap_dkm_
from netsculpt.weights.attention import attention, refine, soft_weights
from tests.weights._models import TinyNet


def _dkm(model: nn.Module, name: str):
    return next(d for n, _, d in dkm_layers(model) if n == name)


def test_soft_assignment_rows_sum_to_one() -> None:
    points = torch.randn(3, 50, 2)
    centroids = torch.randn(3, 8, 2)
    for temperature in (1e-3, 0.1, 10.0):  # nearly hard to nearly uniform
        a = attention(points, centroids, torch.ones(3, 1, 1), temperature)
        assert a.shape == (3, 50, 8) and (a >= 0).all()
        assert torch.allclose(a.sum(-1), torch.ones(3, 50), atol=1e-6)


def test_gradients_reach_weights_and_centroids() -> None:
    model = prepare_dkm_(TinyNet(), DKMConfig(bits=2, temperature=0.2)).train()
    loss = model(torch.randn(4, 1, 8, 8)).square().mean()
    dkm = _dkm(model, "conv2")
    dkm.last_centroids.retain_grad()
    loss.backward()
    assert dkm.last_centroids.grad is not None and dkm.last_centroids.grad.abs().sum() > 0
    original = model.conv2.parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0


def test_weights_gradient_includes_the_path_through_the_centroid_update() -> None:
    # DKM differentiates C = A^T W / A^T 1 too: the layer's gradient must equal the one computed with
    # that path open, and differ from the one with C treated as a constant.
    layer = nn.Linear(12, 6)
    prepare_dkm_(nn.Sequential(layer), DKMConfig(bits=2, temperature=0.3, iterations=0, max_elements=None))
    layer.train()
    start = layer.parametrizations.weight[0].centroids.clone()  # the forward moves them on
    probe = torch.linspace(-1, 1, 72).reshape(6, 12)
    (layer.weight * probe).sum().backward()
    layer_grad = layer.parametrizations.weight.original.grad

    weight = layer.parametrizations.weight.original.detach()
    scale = weight.std()
    grads = []
    for through_centroids in (True, False):
        points = weight.reshape(1, -1, 1).clone().requires_grad_()
        source = points if through_centroids else points.detach()
        centroids = refine(source, start, scale=scale, temperature=0.3, chunk=None)
        out = soft_weights(points, centroids, scale=scale, temperature=0.3)
        (out.reshape(6, 12) * probe).sum().backward()
        grads.append(points.grad.reshape(6, 12))
    assert torch.allclose(layer_grad, grads[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(grads[0], grads[1], rtol=1e-3)


@pytest.mark.parametrize("vector_dim", [1, 2])
def test_chunked_attention_matches_unchunked(vector_dim: int) -> None:
    torch.manual_seed(0)
    results = []
    for max_elements in (None, 100):  # one slice vs ~30 slices of 100 / (groups * k) points
        torch.manual_seed(0)
        layer = nn.Conv2d(8, 12, 3)
        config = DKMConfig(
            bits=3, group_size=4, vector_dim=vector_dim, temperature=0.1, max_elements=max_elements
        )
        prepare_dkm_(nn.Sequential(layer), config)
        layer.train()
        out = layer.weight
        dkm = layer.parametrizations.weight[0]
        dkm.last_centroids.retain_grad()
        (out * torch.cos(torch.arange(out.numel(), dtype=torch.float32)).reshape(out.shape)).sum().backward()
        results.append((out.detach(), layer.parametrizations.weight.original.grad, dkm.last_centroids.grad))
    for unchunked, chunked in zip(*results):
        # Slices add their sums in a different order: float32 rounding (eps 1.2e-7) over ~100-term sums,
        # amplified by 1/temperature in the softmax, stays well below 1e-4 of the largest value.
        assert (unchunked - chunked).abs().max() <= 1e-4 * unchunked.abs().max()


def test_eval_forward_equals_snapped_model() -> None:
    torch.manual_seed(0)
    model = prepare_dkm_(TinyNet(), DKMConfig(bits=3, temperature=0.05)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):  # move weights and centroids away from their k-means start
        optimizer.zero_grad()
        model(torch.randn(8, 1, 8, 8)).logsumexp(1).mean().backward()
        optimizer.step()
    x = torch.randn(5, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        before = model(x)
        snap_dkm_(model)
        after = model(x)
    assert torch.equal(before, after)
    assert not dkm_layers(model) and isinstance(model.conv1.weight, nn.Parameter)
    for key, palette in iter_palettes(model):
        weight = model.get_parameter(key)
        assert torch.equal(weight, palette.weight())
        assert torch.unique(weight).numel() <= 2**3
        assert torch.equal(weight.half().float(), weight)  # fp16 table values


def test_eval_forward_of_a_float64_model_stays_float64() -> None:
    """A float64 model in eval mode used to get float32 hard weights and crash its conv."""
    torch.manual_seed(0)
    model = prepare_dkm_(TinyNet().double(), DKMConfig(bits=2)).eval()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert all(m.weight.dtype == torch.float64 for _, m, _ in dkm_layers(model))
        before = model(x)
        snap_dkm_(model)
        after = model(x)
    assert before.dtype == torch.float64 and torch.equal(before, after)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_layers_train_and_snap_in_their_dtype(dtype) -> None:
    """float16 / bfloat16 layers cluster in float32 (their centroids' dtype) and get their own dtype
    back; before, the first training forward failed with a matmul dtype mismatch."""
    torch.manual_seed(0)
    model = prepare_dkm_(TinyNet().to(dtype), DKMConfig(bits=2)).train()
    out = model(torch.randn(4, 1, 8, 8, dtype=dtype))
    out.float().logsumexp(1).mean().backward()
    assert out.dtype == dtype and all(
        m.parametrizations.weight.original.grad is not None for _, m, _ in dkm_layers(model)
    )
    snap_dkm_(model.eval())
    assert model.conv1.weight.dtype == dtype and torch.unique(model.conv1.weight).numel() <= 4


def test_a_sparse_layer_keeps_an_exact_zero_centroid_through_training() -> None:
    """Sparsify, then DKM: the zero centroid k-means pins stays 0 while the others move, so the
    snapped layer's near-zero weights are exact zeros again (stored sparse), not ~1e-6."""
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        w = model.conv1.weight
        w.masked_fill_(w.abs() < w.abs().quantile(0.75), 0.0)
    zeros = model.conv1.weight == 0
    prepare_dkm_(model, DKMConfig(bits=3, temperature=0.05)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 1, 8, 8)).logsumexp(1).mean().backward()
        optimizer.step()
    assert (_dkm(model, "conv1").centroids == 0).any()
    snap_dkm_(model.eval())
    assert (model.conv1.weight[zeros] == 0).float().mean() > 0.9


def test_low_temperature_soft_weights_equal_hard_assignment() -> None:
    # As the temperature -> 0 the softmax becomes one-hot: A @ C is each point's nearest centroid.
    torch.manual_seed(0)
    points, centroids = torch.randn(2, 500, 1), torch.randn(2, 8, 1)
    nearest = torch.cdist(points, centroids).argmin(-1)
    hard = torch.gather(centroids, 1, nearest.unsqueeze(-1))
    soft = soft_weights(points, centroids, scale=torch.ones(2, 1, 1), temperature=1e-6)
    assert torch.allclose(soft, hard, atol=1e-6)


def test_per_group_codebooks_and_vectors() -> None:
    model = TinyNet()
    prepare_dkm_(model, DKMConfig(bits=2, group_size=4, vector_dim=2, filter_fn=lambda m, n: n == "conv2"))
    snap_dkm_(model)
    ((key, palette),) = list(iter_palettes(model))
    assert key == "conv2.weight" and palette.lut.shape == (4, 4, 2)  # 16 channels / 4 = 4 codebooks
    pairs = model.conv2.weight.detach().reshape(4, -1, 2)
    for g in range(4):  # every pair in group g is one of group g's 4 table entries
        table = palette.lut[g].float()
        assert (torch.cdist(pairs[g], table).min(1).values == 0).all()


def test_layer_bits_and_filter() -> None:
    config = DKMConfig(bits=2, layer_bits={"fc": 4, "conv*": 3}, filter_fn=lambda m, n: n != "conv1")
    model = prepare_dkm_(TinyNet(), config)
    assert {n: d.spec.bits for n, _, d in dkm_layers(model)} == {"conv2": 3, "fc": 4}


def test_bad_configs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"1\.\.8"):
        DKMConfig(bits=9)
    with pytest.raises(ConfigError, match="temperature"):
        DKMConfig(temperature=0)
    with pytest.raises(ConfigError, match=r"conv1: group_size=3 must divide its 8"):
        prepare_dkm_(TinyNet(), DKMConfig(group_size=3))
    with pytest.raises(ConfigError, match="no layer was selected"):
        prepare_dkm_(TinyNet(), DKMConfig(filter_fn=lambda m, n: False))
    with pytest.raises(ConfigError, match="no DKM layers"):
        snap_dkm_(TinyNet())
    assert DKMConfig.from_dict(DKMConfig(bits=3).to_dict()) == DKMConfig(bits=3)


def test_snapping_keeps_the_layer_a_user_built() -> None:
    """The state-dict order must not move: a saved torchvision / timm model is matched to its builder
    by it (weight had come back after bias, and ns.load then asked for model=)."""
    torch.manual_seed(0)
    plain = TinyNet()
    order = list(plain.state_dict())
    model = prepare_dkm_(plain, DKMConfig(bits=3)).eval()
    snap_dkm_(model)
    assert list(model.state_dict()) == order
    assert type(model.conv1) is nn.Conv2d and not hasattr(model.conv1, "parametrizations")
