"""Which feature maps the data-driven criteria read, on models whose layout we know."""

from __future__ import annotations

import torch

import netsculpt as ns
from netsculpt.importance.site_choice import choose_sites


def _names(sites: dict, gid: str) -> list[str]:
    return [s.module for s in sites[gid]]


def test_lenet_reads_relu_maps_and_masks_conv_outputs(lenet) -> None:
    model, x, _ = lenet
    graph = ns.trace(model, x)
    act, mask = choose_sites(model, graph, "activation"), choose_sites(model, graph, "mask")
    assert _names(act, "conv1") == ["relu1"]  # not pool1 as well: it shows the same rectified maps
    assert _names(mask, "conv1") == ["conv1"]


def test_residual_stage_has_one_map_per_block_and_masks_each_batchnorm(resnet20) -> None:
    model, x, _ = resnet20
    graph = ns.trace(model, x)
    act, mask = choose_sites(model, graph, "activation"), choose_sites(model, graph, "mask")
    # identity shortcuts return their input tensor: not a second copy of the previous block's output
    assert _names(act, "conv1") == ["relu", "layer1.0.relu2", "layer1.1.relu2", "layer1.2.relu2"]
    assert _names(mask, "conv1") == ["bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"]
    assert _names(mask, "layer2.0.conv2") == [
        "layer2.0.bn2",
        "layer2.0.shortcut.1",
        "layer2.1.bn2",
        "layer2.2.bn2",
    ]
    every = choose_sites(model, graph, "activation", all_sites=True)
    assert len(every["layer1.0.conv1"]) == 3  # conv, bn, relu outputs


def test_linear_bottleneck_without_activation_reads_producer_outputs() -> None:
    import torchvision

    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    graph = ns.trace(model, torch.randn(1, 3, 32, 32))
    act = choose_sites(model, graph, "activation")
    assert _names(act, "features.2.conv.2") == ["features.2.conv.3", "features.3.conv.3"]


def test_groupnorm_groups_are_observed_as_units() -> None:
    """FCOS head towers: GroupNorm(32, 64) ties channels in pairs; each pair is one unit of the group, read
    as one feature map twice as tall, so data-driven criteria can score the head (fisher used to refuse)."""
    import torch

    import netsculpt as ns
    from netsculpt.importance.collect import group_sites
    from netsculpt.models import create_model

    model = create_model("fcos_slim", image_size=64).eval()
    graph = ns.trace(model, torch.rand(1, 1, 64, 64))
    (site, *_) = group_sites(model, graph, all_sites=True)["head.classification_head.conv.0"]
    assert site.multiplicity == 2 and site.index.shape == (32, 2)
    out = torch.arange(2 * 64 * 3 * 3, dtype=torch.float32).reshape(2, 64, 3, 3)
    units = site.channels(out)
    assert units.shape == (2, 32, 6, 3)
    pair = site.index[0].tolist()
    assert torch.equal(units[:, 0], torch.cat([out[:, pair[0]], out[:, pair[1]]], dim=1))


def test_kept_channel_masks_keep_groupnorm_units_whole() -> None:
    import torch

    import netsculpt as ns
    from netsculpt.explain.channels import kept_channels
    from netsculpt.models import create_model

    model, x = create_model("fcos_slim", image_size=64).eval(), torch.rand(1, 1, 64, 64)
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5, round_to=1)
    mask = kept_channels(model, graph, plan, "head.classification_head.conv.0", 64)
    assert int(mask.sum()) == 32 and torch.equal(mask[0::2], mask[1::2])  # GroupNorm(32, 64): pairs
