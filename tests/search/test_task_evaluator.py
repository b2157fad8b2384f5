"""Search scoring on dense tasks: mAP / mIoU in the accuracy slot, norms-only BN re-estimation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from netsculpt.data.canvases import CanvasSpec, DigitsCanvases
from netsculpt.errors import PruningError
from netsculpt.search import GreedyConfig, search_widths
from netsculpt.search.evaluator import (
    CandidateEvaluator,
    EvalTask,
    adapt_batchnorm_,
    sample_inputs,
    score_task,
    take_batches,
)
from netsculpt.tasks import get_task
from tests.tasks.test_tasks import tiny_fcos, tiny_segmenter

SPEC = CanvasSpec(size=64, digits=(1, 3), scale=(14, 28))


def _loader(kind: str, split: str, n: int = 8) -> DataLoader:
    task = get_task("detection" if kind == "detect" else "segmentation", num_classes=11)
    return DataLoader(DigitsCanvases(split, n, task=kind, spec=SPEC), batch_size=4, collate_fn=task.collate)


def test_batches_of_a_detection_loader_are_copied_nested() -> None:
    loader = _loader("detect", "train")
    (images, targets), *_ = take_batches(loader, 1, "held-out")
    assert isinstance(images, list) and isinstance(targets[0], dict) and "boxes" in targets[0]
    sampled = sample_inputs(loader, 2, seed=0)
    assert isinstance(sampled[0], list) and sampled[0][0].shape == (1, 64, 64)


def test_norms_only_adaptation_runs_a_detector_in_eval_mode() -> None:
    """A detector in training mode would ask for targets; norms_only re-estimates its BN without them."""
    model = tiny_fcos().eval()
    images = sample_inputs(_loader("detect", "train"), 1, seed=0)
    before = model.backbone.body.c3[1].running_mean.clone()
    with pytest.raises(AssertionError):
        adapt_batchnorm_(copy.deepcopy(model), images)  # the whole model in training mode: no targets
    adapt_batchnorm_(model, images, norms_only=True)
    assert not model.training and not torch.equal(model.backbone.body.c3[1].running_mean, before)


def test_norms_only_statistics_are_the_batch_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.Dropout(0.5))
    x = torch.randn(16, 3, 5, 5)
    adapt_batchnorm_(model, [x], norms_only=True)
    assert torch.allclose(model[1].running_mean, model[0](x).mean(dim=(0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize("kind", ["detect", "seg"])
def test_score_task_puts_the_metric_in_the_accuracy_slot(kind: str) -> None:
    task = get_task("detection" if kind == "detect" else "segmentation", num_classes=11)
    model = (tiny_fcos() if kind == "detect" else tiny_segmenter()).eval()
    batches = take_batches(_loader(kind, "test"), 2, "held-out")
    result = score_task(model, task, batches)
    expected = task.evaluate(model, batches)[task.metric]
    assert result.accuracy == pytest.approx(expected) and result.loss == pytest.approx(1 - expected)
    assert result.samples == 8


def test_candidate_evaluator_scores_a_pruned_detector_by_map() -> None:
    model = tiny_fcos().eval()
    example = ([torch.rand(1, 64, 64)],)
    before = copy.deepcopy(model.state_dict())
    train, val = _loader("detect", "train"), _loader("detect", "test")
    task = EvalTask(model, example, take_batches(val, 2, "held-out"), sample_inputs(train, 1),
                    task=get_task("detection"))  # fmt: skip
    evaluator = CandidateEvaluator(task)
    group = evaluator.graph.groups[0]
    result = evaluator(({group.id: list(range(group.size // 2))}, 2))
    assert 0.0 <= result.accuracy <= 1.0 and result.loss == pytest.approx(1 - result.accuracy)
    assert result.samples == 8
    for key, value in model.state_dict().items():  # the BN re-estimation ran on the pruned copy only
        assert torch.equal(value, before[key]), key


def test_search_widths_on_a_segmenter_scores_by_miou(tmp_path) -> None:
    model = tiny_segmenter().eval()
    example = torch.rand(1, 1, 64, 64)
    config = GreedyConfig(eval_batches=1, full_batches=2, adapt_bn_batches=1, criterion="fisher", step=0.3)
    result = search_widths(model, example, "greedy", "macs=0.7", _loader("seg", "train"),
                           _loader("seg", "test"), config, out_dir=tmp_path, task="segmentation")  # fmt: skip
    estimate = result.plan.meta["estimate"]
    assert 0.0 <= estimate["accuracy"] <= 1.0
    assert estimate["loss"] == pytest.approx(1 - estimate["accuracy"])
    assert (tmp_path / "plan.json").exists()


def test_search_widths_refuses_hrel_on_detection() -> None:
    config = GreedyConfig(criterion="hrel", eval_batches=1, full_batches=1)
    with pytest.raises(PruningError, match="one class label per image"):
        search_widths(tiny_fcos().eval(), ([torch.rand(1, 64, 64)],), "greedy", "macs=0.7",
                      _loader("detect", "train"), _loader("detect", "test"), config,
                      task="detection")  # fmt: skip
