"""timm architectures with block designs torchvision lacks prune exactly too (or say why not)."""

from __future__ import annotations

import pytest
import torch

from netsculpt.graph import trace
from tests.coverage._check import check_prunes_exactly, check_prunes_inexactly

timm = pytest.importorskip("timm")

# name -> (input size, extra build options); one entry per block design
ARCHS = {
    "resnet18d": (64, {}),  # deep stem, avg-pool downsample shortcut
    "cspdarknet53": (64, {}),  # cross-stage partial: split halves, concat
    "dla34": (64, {}),  # deep layer aggregation: tree of concats
    "dpn68": (64, {}),  # dual path: fixed slices + residual + dense concat
    "ghostnet_100": (64, {}),  # ghost modules: cheap depthwise features, concat, crop
    "rexnet_100": (64, {}),  # partial-channel residual add (in-place slice update)
    "repvgg_a0": (64, {}),  # multi-branch conv sum
    "resnest14d": (64, {}),  # split attention: radix softmax over grouped views
    "res2net50_14w_8s": (64, {}),  # hierarchical split into width scales
    "mixer_s16_224": (64, {"img_size": 64}),  # MLP-Mixer: token-mixing MLP on the transposed tensor
    "poolformer_s12": (64, {}),  # pooling token mixer, GroupNorm, layer scale
    "levit_128s": (224, {}),  # attention with BatchNorm linears, head-split reshapes
    "efficientformer_l1": (224, {}),  # meta-4D/3D blocks, attention bias
    "mobilevit_xxs": (64, {}),  # unfold into patches, transformer, fold back
    "hrnet_w18_small": (64, {}),  # parallel multi-resolution branches with fuse layers
    "lambda_resnet26t": (64, {}),  # output reshaped with the *input's* channel count read from .shape
    "maxxvit_rmlp_nano_rw_256": (64, {"img_size": 64}),  # MLP-made relative bias passed as attn_mask
    "nf_seresnet26": (64, {}),  # weight-standardised convs: weights computed in forward
}

# Every group is inexact: a scalar learnable bias (StarReLU, HGNetV2's affine block) makes a masked
# channel a nonzero constant, or (ConvNeXt-V2) LayerNorm and GRN's mean over channels. Exact mode must
# say so; allow_inexact prunes them (GRN's weights are seen through ``.view``) and the model still runs.
ALL_INEXACT = {"poolformerv2_s12": 64, "hgnetv2_b0": 64, "convnextv2_pico": 64}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_timm_model_prunes_exactly(name: str) -> None:
    size, options = ARCHS[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **options)
    result = check_prunes_exactly(model, torch.randn(1, 3, size, size))
    assert result["macs_ratio"] < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL_INEXACT))
def test_timm_scalar_bias_models_are_inexact_not_wrong(name: str) -> None:
    size = ALL_INEXACT[name]
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, size, size)
    strict = trace(model, x)
    assert not strict.prunable_groups
    assert any("not zero when masked" in r or "normalises" in r for g in strict.groups for r in g.reasons)
    assert check_prunes_inexactly(model, x)["macs_ratio"] < 0.9
