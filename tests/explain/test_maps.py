"""Interpretation maps: known answers, pruned == masked original, and nothing left in the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.explain import (
    Perturbation,
    chip_maps,
    grad_cam,
    independence,
    kept_channels,
    learn_importance,
    masked_copy,
    peak_location,
    refine,
)
from netsculpt.graph import trace
from netsculpt.surgery.verify import random_plan
from tests.importance.conftest import randomize_bn

TOLERANCE = 1e-4


class Detectors(nn.Module):
    """Channel c of ``feat`` lights up on bright (c=0) or dark (c=1) pixels; GAP + identity: class c's
    logit is the mean of channel c, so class 0 is "the bright patch", class 1 "the dark patch"."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.feat.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
            self.fc.weight.copy_(torch.eye(2))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.feat(x))).flatten(1))


def quadrant_images(n: int = 6, side: int = 16) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """A bright 3x3 patch somewhere in the top-left quadrant and a dark one in the bottom-right."""
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(n, 1, side, side)
    centres = []
    h = side // 2
    for i in range(n):
        r, c = (int(v) for v in torch.randint(1, h - 1, (2,), generator=gen))
        x[i, 0, r - 1 : r + 2, c - 1 : c + 2] = 1.0
        r2, c2 = (int(v) + h for v in torch.randint(1, h - 1, (2,), generator=gen))
        x[i, 0, r2 - 1 : r2 + 2, c2 - 1 : c2 + 2] = -1.0
        centres.append((r, c))
    return x, centres


def test_grad_cam_peaks_in_the_quadrant_that_decides_the_class() -> None:
    model = Detectors().eval()
    x, centres = quadrant_images()
    bright = grad_cam(model, x, "act", target=0)
    dark = grad_cam(model, x, "act", target=1)
    for i, (r, c) in enumerate(centres):
        pr, pc = peak_location(bright.maps[i : i + 1])[0]
        assert abs(pr - r) <= 1 and abs(pc - c) <= 1
        assert bright.maps[i, 8:, 8:].abs().max() < 1e-6  # the dark patch says nothing for class 0
        assert dark.maps[i, :8, :8].abs().max() < 1e-6
        dr, dc = peak_location(dark.maps[i : i + 1])[0]
        assert dr >= 8 and dc >= 8
    # with global average pooling Grad-CAM is exactly CAM: relu(sum_c w_kc A_c) / (h w)
    a = model.act(model.feat(x)).double()
    cam = (model.fc.weight.double()[0][None, :, None, None] * a).sum(1).clamp_min(0) / 256
    assert torch.allclose(bright.raw, cam, atol=1e-12)
    assert bright.contributions[:, 1].abs().max() < 1e-12  # channel 1 gave class 0 nothing


def test_grad_cam_inside_no_grad_gives_the_same_maps() -> None:
    """Evaluation scripts run under torch.no_grad(): it raised 'element 0 of tensors does not require
    grad'."""
    model = Detectors().eval()
    x, _ = quadrant_images()
    with torch.no_grad():
        inside = grad_cam(model, x, "act", target=0)
    assert torch.equal(inside.raw, grad_cam(model, x, "act", target=0).raw)


def test_chip_importance_finds_the_class_channel_and_maps_localise() -> None:
    model = Detectors().eval()
    with torch.no_grad():
        model.fc.weight.mul_(20)  # confident classes: removing the channel moves the probability
    x, centres = quadrant_images(8)
    labels = torch.tensor([0, 1] * 4)
    beta = learn_importance(model, x, labels, "act", [0, 1], Perturbation(masks=64))
    assert beta[0][0] > 0 and beta[0][1] == 0
    assert beta[1][1] > 0 and beta[1][0] == 0
    maps, _ = chip_maps(model, x, "act", beta[0])
    for i, (r, c) in enumerate(centres):
        pr, pc = peak_location(maps[i : i + 1])[0]
        assert abs(pr - r) <= 1 and abs(pc - c) <= 1
    fine = refine([maps, maps])
    assert torch.allclose(fine, maps / maps.flatten(1).amax(1)[:, None, None], atol=1e-6)


@pytest.mark.parametrize(("name", "layer", "shape"), [
    ("lenet5", "conv2", (4, 1, 28, 28)),
    ("resnet20_cifar", "layer2.1.conv1", (2, 3, 32, 32)),
])  # fmt: skip
def test_maps_of_the_pruned_model_equal_the_masked_original(name: str, layer: str, shape: tuple) -> None:
    torch.manual_seed(0)
    model = randomize_bn(ns.create_model(name)).eval()
    x = torch.randn(shape)
    graph = trace(model, x[:1])
    plan = random_plan(graph, 0.5, 0)
    pruned = ns.apply_plan(model, plan, x[:1], graph=graph).eval()
    masked = masked_copy(model, graph, plan).eval()
    width = dict(model.named_modules())[layer].out_channels
    kept = kept_channels(model, graph, plan, layer, width)
    assert int(kept.sum()) == dict(pruned.named_modules())[layer].out_channels < width
    for target in (None, 3):
        small, ref = grad_cam(pruned, x, layer, target), grad_cam(masked, x, layer, target)
        assert torch.equal(small.classes, ref.classes)
        err = (small.maps - ref.maps).norm() / ref.maps.norm().clamp_min(1e-12)
        assert err <= TOLERANCE
        assert torch.allclose(small.channel_weights, ref.channel_weights[:, kept], atol=1e-5)
        assert ref.channel_weights[:, ~kept].abs().max() <= 1e-6  # removed: zero maps, no vote
    beta = torch.rand(width, dtype=torch.float64)
    small_map, _ = chip_maps(pruned, x, layer, beta[kept])
    ref_map, _ = chip_maps(masked, x, layer, beta)
    assert (small_map - ref_map).norm() / ref_map.norm().clamp_min(1e-12) <= TOLERANCE
    drop_small, drop_ref = independence(pruned, x, layer), independence(masked, x, layer)
    assert torch.allclose(drop_small, drop_ref[kept], rtol=1e-3, atol=1e-6)


def _fingerprint(model: nn.Module) -> list:
    return [
        (
            name,
            sorted(vars(m).keys()),
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            len(m._backward_hooks),
            len(getattr(m, "_backward_pre_hooks", {})),
            m.training,
        )
        for name, m in model.named_modules()
    ]


def test_nothing_of_netsculpt_is_left_in_the_model() -> None:
    model = Detectors().train()
    model.fc.weight.requires_grad_(False)
    before = _fingerprint(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, _ = quadrant_images(4)
    grad_cam(model, x, "act")
    learn_importance(model, x, torch.tensor([0, 1, 0, 1]), "act", [0, 1], Perturbation(masks=16))
    chip_maps(model, x, "act", [1.0, 0.0])
    independence(model, x, "feat")
    with pytest.raises(ConfigError, match="no layer 'nope'"):
        grad_cam(model, x, "nope")
    with pytest.raises(ConfigError, match="not \\(N, C, H, W\\)"):
        grad_cam(model, x, "fc")  # the hook on fc was registered, then the check failed
    assert _fingerprint(model) == before
    assert model.training and not model.fc.weight.requires_grad and model.feat.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_bad_targets_give_clear_errors() -> None:
    model = Detectors().eval()
    x, _ = quadrant_images(2)
    with pytest.raises(ConfigError, match="out of range: the model has 2 classes"):
        grad_cam(model, x, "act", target=5)
    with pytest.raises(ConfigError, match="3 target classes for 2 images"):
        grad_cam(model, x, "act", target=[0, 1, 1])
    with pytest.raises(ConfigError, match="no calibration image of class 1"):
        learn_importance(model, x, torch.tensor([0, 0]), "act", [1])


def test_deletion_hides_the_evidence_a_faithful_map_points_at() -> None:
    from netsculpt.explain.faithfulness import deletion_drop, hide_top, random_drop

    model = Detectors().eval()
    with torch.no_grad():
        model.fc.weight.mul_(200)  # class 0 certain while the patch shows
    x = quadrant_images(6)[0].clamp_min(0)  # the bright patch on a zero background (the fill value)
    classes = torch.zeros(6, dtype=torch.long)
    cam = grad_cam(model, x, "act", classes).maps
    hidden = hide_top(x, cam, 0.1)
    assert hidden.max() < 1 and hidden.min() == 0  # the bright patch is gone
    assert deletion_drop(model, x, classes, cam, 0.1) > 0.4
    assert random_drop(model, x, classes, 0.1) < 0.1


def test_chip_progress_moves_per_forward_pass_not_per_class(monkeypatch) -> None:
    """A class of ResNet-50 images took minutes, so a bar advancing once per class stood still; it now
    advances once per forward pass: 16 masks at 4 per pass is 4 passes per class, 8 for two classes."""
    from rich.progress import Progress

    ticks: list[int] = []
    real = Progress.advance

    def counting(self, task_id, advance: float = 1) -> None:
        if "CHIP importance" in self._tasks[task_id].description:
            ticks.append(int(advance))
        real(self, task_id, advance)

    monkeypatch.setattr(Progress, "advance", counting)
    x, _ = quadrant_images(4)
    learn_importance(
        Detectors().eval(), x, torch.tensor([0, 1, 0, 1]), "act", [0, 1], Perturbation(masks=16, batch=4)
    )
    assert sum(ticks) == 8 and len(ticks) == 8
