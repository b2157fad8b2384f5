"""AdderConv2d: forward is -L1 distance, backward is the paper's surrogate, memory chunking is exact."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from netsculpt.adder import AdderConv2d
from netsculpt.adder import layer as layer_mod
from netsculpt.errors import ConfigError


def _reference(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """A direct loop over output positions: the definition, not the implementation."""
    o, _, kh, kw = w.shape
    xp = F.pad(x, (padding,) * 4)
    n, _, h, wd = xp.shape
    oh = (h - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd - dilation * (kw - 1) - 1) // stride + 1
    out = torch.empty(n, o, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[
                :,
                :,
                i * stride : i * stride + dilation * (kh - 1) + 1 : dilation,
                j * stride : j * stride + dilation * (kw - 1) + 1 : dilation,
            ]
            out[:, :, i, j] = -(patch.unsqueeze(1) - w.unsqueeze(0)).abs().flatten(2).sum(2)
    return out


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_forward_is_negative_l1_distance(stride: int, padding: int, dilation: int) -> None:
    torch.manual_seed(0)
    layer = AdderConv2d(3, 5, 3, stride=stride, padding=padding, dilation=dilation).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    expected = _reference(x, layer.weight.detach(), stride, padding, dilation)
    assert torch.allclose(layer(x), expected, atol=1e-10)
    assert torch.equal(layer(x[0]), layer(x)[0])  # an unbatched image, as nn.Conv2d takes it


def test_chunked_forward_and_backward_equal_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    layer = AdderConv2d(4, 6, 3, padding=1).double()
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(3, 6, 7, 7, dtype=torch.float64)

    def run() -> tuple[torch.Tensor, ...]:
        x.grad, layer.weight.grad = None, None
        y = layer(x)
        (y * upstream).sum().backward()
        return y.detach(), x.grad.clone(), layer.weight.grad.clone()

    whole = run()
    monkeypatch.setattr(layer_mod, "CHUNK_ELEMENTS", 6 * 36 * 5)  # 5 patch rows per chunk: 30 chunks
    chunked = run()
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, atol=1e-12)


def test_backward_is_the_papers_surrogate() -> None:
    """dY/dW = X - W (full precision), dY/dX = HardTanh(W - X), with eta=0 (no rescaling)."""
    torch.manual_seed(3)
    layer = AdderConv2d(2, 3, 2, eta=0.0).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    w = layer.weight.detach().reshape(3, -1)
    cols = F.unfold(x.detach(), 2).transpose(1, 2).reshape(-1, 8)  # (rows, patch)
    g_rows = g.flatten(2).transpose(1, 2).reshape(-1, 3)  # (rows, out)
    diff = cols.unsqueeze(1) - w.unsqueeze(0)  # X - W: (rows, out, patch)
    grad_w = (g_rows.unsqueeze(2) * diff).sum(0).reshape_as(layer.weight)
    grad_cols = (g_rows.unsqueeze(2) * (-diff).clamp(-1, 1)).sum(1)
    grad_x = F.fold(grad_cols.reshape(2, 9, 8).transpose(1, 2), (4, 4), 2)
    assert torch.allclose(layer.weight.grad, grad_w, atol=1e-10)
    assert torch.allclose(x.grad, grad_x, atol=1e-10)


def test_adaptive_learning_rate_sets_the_filter_gradient_norm() -> None:
    """Eq. 12: the filter gradient is rescaled to eta * sqrt(k), k the number of filter weights."""
    layer = AdderConv2d(3, 4, 3, eta=0.2)
    layer(torch.randn(2, 3, 6, 6)).pow(2).mean().backward()
    assert math.isclose(float(layer.weight.grad.norm()), 0.2 * math.sqrt(layer.weight.numel()), rel_tol=1e-5)


def test_bad_eta_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="eta"):
        AdderConv2d(1, 1, 1, eta=-1.0)


def test_exact_input_gradients_are_the_true_derivative_and_leave_nothing_behind() -> None:
    """Grad-CAM differentiates through adder layers: inside exact_input_gradients the input gradient is
    sign(w - x) (autograd of -|x - w| computed directly), not the HardTanh training surrogate."""
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    g = torch.randn(2, 4, 6, 6)
    with layer_mod.exact_input_gradients(layer):
        (exact,) = torch.autograd.grad((layer(x) * g).sum(), x)
    assert not hasattr(layer, "exact_input_grad")
    cols = F.unfold(x, 3, padding=1)  # (2, 27, 36): the reference -|x - w| through autograd
    ref_out = -(cols.unsqueeze(1) - layer.weight.reshape(4, -1, 1)).abs().sum(2)
    (reference,) = torch.autograd.grad((ref_out * g.reshape(2, 4, -1)).sum(), x)
    torch.testing.assert_close(exact, reference, rtol=0, atol=1e-5)
    (surrogate,) = torch.autograd.grad((layer(x) * g).sum(), x)
    assert not torch.allclose(surrogate, reference, atol=1e-3)  # training keeps the paper's surrogate


def test_explain_picks_adder_layers_as_default_layers() -> None:
    from netsculpt.adder import to_adder
    from netsculpt.explain.run_order import ran_convs, run_order

    model = to_adder(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 4, 3)), keep=[]).eval()
    assert len(ran_convs(model, run_order(model, (1, 1, 8, 8)))) == 2


def test_onnx_export_of_an_adder_model_says_why_it_cannot() -> None:
    """It failed with "'Tensor' object has no attribute 'bit_length'" from inside the fused kernel."""
    import tempfile
    from pathlib import Path

    from netsculpt.measure.onnx_runtime import export_onnx

    model = torch.nn.Sequential(AdderConv2d(1, 2, 3)).eval()
    with pytest.raises(Exception, match="cannot be exported to ONNX / OpenVINO"):
        export_onnx(model, (torch.randn(1, 1, 6, 6),), Path(tempfile.mkdtemp()) / "a.onnx")
