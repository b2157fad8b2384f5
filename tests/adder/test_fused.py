"""The compiled adder kernels compute the paper's forward and gradients; failures fall back cleanly."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from netsculpt.adder import AdderConv2d, fused


def _reference_grads(
    layer: AdderConv2d, x: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output, dL/dx and dL/dW from the formulas (broadcast, no chunking, no compiled code)."""
    w = layer.weight.detach().reshape(layer.out_channels, -1)
    k, s, p, d = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    cols = F.unfold(x.detach(), k, d, p, s)  # (n, patch, L)
    n, patch, positions = cols.shape
    cols = cols.transpose(1, 2).reshape(-1, patch)
    g_rows = g.flatten(2).transpose(1, 2).reshape(-1, layer.out_channels)
    diff = cols.unsqueeze(1) - w.unsqueeze(0)  # X - W: (rows, out, patch)
    out = -diff.abs().sum(2)
    grad_w = (g_rows.unsqueeze(2) * diff).sum(0)
    if layer.eta > 0:  # Eq. 12: the filter gradient rescaled to norm eta * sqrt(k)
        grad_w = grad_w * (layer.eta * math.sqrt(w.numel()) / grad_w.norm())
    grad_cols = (g_rows.unsqueeze(2) * (-diff).clamp(-1, 1)).sum(1)
    grad_x = F.fold(grad_cols.reshape(n, positions, patch).transpose(1, 2), x.shape[2:], k, d, p, s)
    out = out.reshape(n, positions, -1).transpose(1, 2).reshape_as(g)
    return out, grad_x, grad_w.reshape_as(layer.weight)


def _run(layer: AdderConv2d, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    layer.weight.grad = None
    y = layer(x)
    (y * g).sum().backward()
    return y.detach(), x.grad, layer.weight.grad


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("gcc") is None, reason="no C++ compiler")
@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "padding", "eta"),
    [(3, 7, 3, 1, 1, 0.2), (5, 4, (3, 2), 2, 0, 0.0), (4, 6, 5, (1, 2), 2, 0.5)],
)
def test_fused_gradients_equal_the_reference_formula(
    monkeypatch: pytest.MonkeyPatch, cin: int, cout: int, k: int, stride: int, padding: int, eta: float
) -> None:
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", 0)  # small shapes too: the compiled path must run
    monkeypatch.setattr(fused, "_compiled", {})
    gen = torch.Generator().manual_seed(cin * 100 + cout)
    layer = AdderConv2d(cin, cout, k, stride=stride, padding=padding, eta=eta)
    x = 1.5 * torch.randn(3, cin, 11, 10, generator=gen)  # wide enough that many |W - X| exceed 1
    with torch.no_grad():
        y_shape = layer(x).shape
    g = torch.randn(y_shape, generator=gen)
    patch, positions = cin * math.prod(layer.kernel_size), y_shape[2] * y_shape[3]
    # two images per call: blocks of 2 + a zero-padded last block of 1
    monkeypatch.setattr(fused, "FUSED_CALL_ELEMENTS", 2 * cout * patch * positions)
    fused._compiled.clear()
    got = _run(layer, x, g)
    compiled = [key for key, fn in fused._compiled.items() if fn is not None]
    assert {key[0] for key in compiled} == {"neg_l1", "clipped_grad"}, "the compiled kernels did not run"
    assert all(key[-1] == 2 for key in compiled), "expected blocks of two images"
    expected = _reference_grads(layer, x, g)
    for name, a, b in zip(("output", "grad x", "grad W"), got, expected):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()), name
    with fused.fused_kernels(False):  # the eager path agrees too
        for a, b in zip(_run(layer, x, g), got):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_small_shapes_keep_the_eager_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "_compiled", {})
    layer = AdderConv2d(2, 3, 3)
    _run(layer, torch.randn(2, 2, 6, 6), torch.randn(2, 3, 4, 4))
    assert fused._compiled == {}  # 32 rows x 3 x 18 elements: nothing compiled, no compile wait


def test_a_failing_compiler_falls_back_to_the_eager_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", 0)
    monkeypatch.setattr(fused, "_compiled", {})

    def broken(*args: object, **kwargs: object) -> object:
        def fail(*a: object) -> None:
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(fused.torch, "compile", broken)
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1)
    x, g = torch.randn(2, 3, 5, 5), torch.randn(2, 4, 5, 5)
    with pytest.warns(RuntimeWarning, match="eager path"):
        got = _run(layer, x, g)
    assert set(fused._compiled.values()) == {None}  # remembered: no second attempt, no second warning
    for a, b in zip(got, _reference_grads(layer, x, g)):
        assert torch.allclose(a, b, atol=1e-5)


def test_images_per_call_is_a_bounded_power_of_two() -> None:
    assert fused.images_per_call(64, 50, 500, 64) == 8  # LeNet-5 conv2, batch 64: 8 calls
    assert fused.images_per_call(3, 1, 1, 1) == 4  # never more than twice the images (padding)
    assert fused.images_per_call(10**6, 1, 1, 1) == 256
    assert fused.images_per_call(64, 10**4, 10**4, 1) == 1
