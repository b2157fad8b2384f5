"""Published reference models: counts must match torchvision's figures and an independent tally.

torchvision's weight metadata (no download needed to read it) lists ResNet-50 at 25,557,032 parameters
and ``_ops`` 4.089 (its docs: 4.09 "GFLOPS"), which are multiply-accumulates of the convolutions and
final linear layer (fvcore convention); MobileNetV2 at 3,504,872 and 0.301. The independent tally
below sums the textbook formula over every Conv2d and Linear via forward hooks.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from netsculpt.measure import count_macs, count_params


def hook_tally(model: nn.Module, x: torch.Tensor) -> int:
    """Sum of Cout * (Cin/groups) * k_h * k_w * H_out * W_out per conv and in*out per linear."""
    total = 0

    def conv(module: nn.Conv2d, _inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += (
            out.shape[0]
            * out.shape[1]
            * (module.in_channels // module.groups)
            * kh
            * kw
            * out.shape[2]
            * out.shape[3]
        )

    def linear(module: nn.Linear, inputs: tuple, _out: torch.Tensor) -> None:
        nonlocal total
        total += inputs[0].shape[0] * module.in_features * module.out_features

    handles = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return total


def test_resnet50_params_and_macs() -> None:
    model = torchvision.models.resnet50()
    x = torch.randn(1, 3, 224, 224)
    macs, layers = count_macs(model, x)  # one forward, no latency
    meta = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta
    assert count_params(model) == meta["num_params"] == 25_557_032
    assert round(macs / 1e9, 3) == meta["_ops"] == 4.089
    assert round(macs / 1e9, 2) == 4.09  # the published "4.09 GFLOPS"
    assert macs == hook_tally(model, x)  # 4,089,184,256 exactly
    assert sum(layer.params for layer in layers) == 25_557_032
    assert layers[0].name == "conv1" and layers[0].output_shape == (1, 64, 112, 112)


def test_mobilenet_v2_macs() -> None:
    model = torchvision.models.mobilenet_v2()
    x = torch.randn(1, 3, 224, 224)
    macs, _ = count_macs(model, x)
    meta = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta
    assert 0.30e9 <= macs <= 0.32e9
    assert round(macs / 1e9, 3) == meta["_ops"] == 0.301
    assert macs == hook_tally(model, x)  # depthwise convs: Cin/groups = 1
    assert count_params(model) == meta["num_params"] == 3_504_872
