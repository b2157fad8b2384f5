"""The task registry end to end on tiny models: train, prune with gradient criteria, distil."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN

import netsculpt as ns
from netsculpt.data.canvases import CanvasSpec, DigitsCanvases
from netsculpt.errors import ConfigError, DataError, PruningError
from netsculpt.tasks import get_task, list_tasks
from netsculpt.tasks.detection import loss_mode
from netsculpt.train import DistillConfig, TrainConfig, distill, train

SPEC = CanvasSpec(size=64, digits=(1, 3), scale=(14, 28))


def tiny_fcos() -> FCOS:
    torch.manual_seed(0)
    body = nn.Sequential()
    body.add_module("c3", nn.Sequential(nn.Conv2d(1, 16, 3, 8, 1), nn.BatchNorm2d(16), nn.ReLU()))
    body.add_module("c4", nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU()))
    backbone = BackboneWithFPN(body, {"c3": "0", "c4": "1"}, [16, 32], 32)  # P3, P4 and a max-pooled P5
    anchors = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)  # one anchor per location and level
    return FCOS(
        backbone, 11, min_size=64, max_size=64, image_mean=[0.0], image_std=[1.0], anchor_generator=anchors
    )


def tiny_segmenter() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 11, 1),
    )  # fmt: skip


def loaders(kind: str, n: int = 8):
    task = get_task("detection" if kind == "detect" else "segmentation", num_classes=11)
    make = lambda split: torch.utils.data.DataLoader(  # noqa: E731
        DigitsCanvases(split, n, task=kind, spec=SPEC), batch_size=4, collate_fn=task.collate
    )
    return task, make("train"), make("test")


CONFIG = TrainConfig(epochs=1, lr=1e-3, optimizer="adamw", warmup_epochs=0)


def test_registry_lists_the_three_tasks():
    assert {"classification", "detection", "segmentation"} <= set(list_tasks())
    with pytest.raises(ns.errors.UnknownNameError, match="detection"):
        get_task("detections")


def test_detection_trains_and_reports_map(tmp_path):
    _, train_dl, test_dl = loaders("detect")
    model = tiny_fcos()
    result = train(model, train_dl, test_dl, CONFIG, task="detection", out_dir=tmp_path)
    record = result.history[-1]
    assert record["train_acc"] is None and record["test_loss"] is None
    assert 0.0 <= record["test_map"] <= 1.0 and record["test_acc"] == record["test_map"]
    assert "test_map_50" in record and (tmp_path / "history.json").exists()


def test_segmentation_trains_and_reports_miou():
    task, train_dl, test_dl = loaders("seg")
    result = train(tiny_segmenter(), train_dl, test_dl, CONFIG, task=task)
    assert 0.0 <= result.final_acc <= 1.0 and "test_pixel_acc" in result.history[-1]


@pytest.mark.parametrize("criterion", ["fisher", "taylor"])
def test_gradient_criteria_prune_a_detector_on_its_own_loss(criterion):
    task, train_dl, _ = loaders("detect")
    model = tiny_fcos().eval()
    state = copy.deepcopy(model.state_dict())
    example = ([torch.rand(1, 64, 64)],)
    pruned = ns.prune(
        model, example, criterion=criterion, ratio=0.5, data=train_dl, calib_batches=2, task=task
    )
    assert ns.measure(pruned, example).macs < ns.measure(model, example).macs
    for key, value in model.state_dict().items():  # the calibration pass left the original untouched
        assert torch.equal(value, state[key]), key
    pruned.eval()
    out = pruned(*example)
    assert isinstance(out, list) and set(out[0]) == {"boxes", "scores", "labels"}


def test_gradient_scores_follow_the_task_loss():
    """Fisher scores on a detector are finite, not all equal, and come from its box/class losses."""
    task, train_dl, _ = loaders("detect")
    model = tiny_fcos().eval()
    example = ([torch.rand(1, 64, 64)],)
    graph = ns.trace(model, example)
    crit = ns.importance.get_criterion("fisher")
    crit.task, crit.calib_batches = task, 2
    scores = crit.score(model, graph, train_dl)
    values = torch.cat([torch.as_tensor(s) for s in scores.values()])
    assert torch.isfinite(values).all() and values.std() > 0


@pytest.mark.parametrize("criterion", ["hrel", "gpp", "gpp_reg"])
def test_label_criteria_on_detection_are_a_clear_error(criterion):
    """gpp lacked the flag and crashed inside index_add_ on a segmenter's pixel labels."""
    task, train_dl, _ = loaders("detect")
    with pytest.raises(PruningError, match=r"one class label per image.*detection"):
        ns.prune(
            tiny_fcos().eval(), ([torch.rand(1, 64, 64)],), criterion=criterion, data=train_dl, task=task
        )


def test_loss_mode_keeps_batchnorm_statistics():
    task, train_dl, _ = loaders("detect")
    model = tiny_fcos().eval()
    before = copy.deepcopy(model.state_dict())
    images, targets = next(iter(train_dl))
    with loss_mode(model):
        task.loss(model, images, targets)[0].backward()
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("kind", ["detect", "seg"])
def test_dense_distillation_runs_and_matches_the_teacher(kind):
    task, train_dl, test_dl = loaders(kind)
    teacher = tiny_fcos() if kind == "detect" else tiny_segmenter()
    teacher.eval()
    student = copy.deepcopy(teacher)
    loss_fn = task.distillation_loss(teacher, DistillConfig(temperature=2.0, alpha=1.0))
    images, targets = next(iter(train_dl))
    student.train()
    loss, _ = loss_fn(student, images, targets)
    assert torch.isfinite(loss) and "soft" in loss_fn.last_terms
    result = distill(student, teacher, train_dl, test_dl, CONFIG, DistillConfig(alpha=0.5), task=task)
    assert result.epochs_run == 1


def test_dense_distillation_refuses_hints_and_a_headless_detector():
    task = get_task("detection")
    with pytest.raises(ConfigError, match="hints"):
        task.distillation_loss(tiny_fcos(), DistillConfig(hints=["backbone"]))
    with pytest.raises(ConfigError, match="no module called"):
        get_task("detection", head="nope").head_module(tiny_fcos())


def test_detection_task_refuses_classification_batches():
    task = get_task("detection")
    with pytest.raises(DataError, match="list of dicts"):
        task.loss(tiny_fcos().train(), [torch.rand(1, 64, 64)], torch.tensor([3]))


def test_detection_distillation_matches_fpn_features_through_adapters():
    """FPN-feature hints: the pruned student's narrower FPN levels are matched to the teacher's through
    learned 1x1 adapters, beside the head outputs; the adapters train with the student."""
    task, train_dl, test_dl = loaders("detect")
    teacher = tiny_fcos().eval()
    example = ([torch.rand(1, 64, 64)],)
    student = ns.prune(teacher, example, criterion="l1", ratio=0.5)
    levels = ["backbone.fpn.layer_blocks.0", "backbone.fpn.layer_blocks.1"]
    assert (
        student.backbone.fpn.layer_blocks[0][0].out_channels
        < teacher.backbone.fpn.layer_blocks[0][0].out_channels
    )
    config = DistillConfig(alpha=0.5, hints=levels, hint_weight=1.0)
    loss_fn = task.distillation_loss(teacher, config, student=student, example_inputs=example[0], seed=0)
    assert len(list(loss_fn.learnable.parameters())) > 0  # channel counts differ: adapters
    images, targets = next(iter(train_dl))
    student.train()
    loss, _ = loss_fn(student, images, targets)
    assert torch.isfinite(loss) and {"task", "soft", "hint"} <= set(loss_fn.last_terms)
    loss.backward()
    assert all(p.grad is not None for p in loss_fn.learnable.parameters())
    result = distill(student, teacher, train_dl, test_dl, CONFIG, config, task=task)
    assert result.epochs_run == 1 and not any("fpn" in k and "adapter" in k for k in student.state_dict())


def test_a_two_stage_detector_distils_with_alpha_zero_as_its_error_says():
    """Faster R-CNN has no head whose output the soft loss could match; alpha=0 (the fix the error
    names) looked the head up anyway and raised the same error."""
    import torchvision.models.detection as tvd

    torch.manual_seed(0)
    build = lambda: tvd.fasterrcnn_mobilenet_v3_large_320_fpn(  # noqa: E731
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
    )
    teacher, student = build().eval(), build().train()
    task = get_task("detection")
    with pytest.raises(ConfigError, match="alpha=0"):
        task.distillation_loss(teacher, DistillConfig(alpha=0.5))(student, [torch.rand(3, 64, 64)], [_box()])
    loss, _ = task.distillation_loss(teacher, DistillConfig(alpha=0.0))(
        student, [torch.rand(3, 64, 64)], [_box()]
    )
    assert torch.isfinite(loss)


def _box() -> dict:
    return {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([1])}


def test_a_task_that_is_neither_a_name_nor_a_task_is_named():
    # task=3 failed inside difflib ("'int' object is not iterable")
    with pytest.raises(
        ConfigError,
        match=r"task= takes a task name \(classification, detection, language_modeling, segmentation\)",
    ):
        get_task(3)


def test_language_modeling_in_a_recipe_is_refused_with_the_way_to_run_it():
    # before: IndexError from naming the (absent) data names of the task
    from types import SimpleNamespace

    from netsculpt.pipeline.dense import check_task_data

    with pytest.raises(ValueError, match="no recipe or CLI data yet"):
        check_task_data("language_modeling", SimpleNamespace(name="mnist5k", options={}))
