"""The quantize stage on each runtime and with `runtime: auto` (fastest within the recipe's tolerance)."""

from __future__ import annotations

import json

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe
from netsculpt.weights.int8_select import pick_fastest
from tests.runtimes._run import TINY

pytestmark = pytest.mark.runtimes  # own pytest process in `make test` (see Makefile)


@pytest.mark.slow
def test_auto_keeps_the_fastest_within_tolerance_and_resumes(tmp_path) -> None:
    text = TINY.replace(
        "quantize: {calib_batches: 2}",
        "quantize: {calib_batches: 1, runtime: auto, tolerance_pp: 100, select_batches: 1}",
    )
    results = run_recipe(parse_recipe(text), text, tmp_path)
    info = results["stages"][2]["info"]
    rows = [r for r in info["candidates"] if "latency_ms" in r]
    assert {r["runtime"] for r in info["candidates"]} == {"onnxruntime", "openvino", "torch"}
    fastest = min(rows, key=lambda r: r["latency_ms"])["runtime"]  # tolerance 100: all qualify
    assert info["decision"]["int8_runtime"] == fastest
    assert all(r["float_ms"] > 0 for r in rows)  # the float model timed on each candidate's runtime
    if info["decision"]["keep"] == "float":  # no candidate beat the float model on any runtime
        assert (
            info["runtime"] is None and (tmp_path / "02_quantize" / "model" / "model.safetensors").is_file()
        )
    else:
        assert info["runtime"] == fastest
        names = {"onnxruntime": "model.int8.onnx", "openvino": "model.int8.xml", "torch": "model.int8.pt2"}
        assert (tmp_path / "02_quantize" / names[info["runtime"]]).is_file()
        assert results["after"]["size_bytes"] == next(
            r["size_bytes"] for r in rows if r["runtime"] == fastest
        )
    again = run_recipe(parse_recipe(text), text, tmp_path)  # resumes from the artefact on disk
    assert json.dumps(again["after"]) == json.dumps(results["after"])


@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_quantize_stage_on_one_runtime(runtime, tmp_path) -> None:
    text = TINY.replace("quantize: {calib_batches: 2}", f"quantize: {{calib_batches: 2, runtime: {runtime}}}")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    key = "openvino-int8" if runtime == "openvino" else "compile-int8"
    assert results["after"]["latency"][key]["1"] > 0 and 0 <= results["after"]["accuracy"] <= 1


def test_pick_fastest_respects_the_tolerance_and_names_the_misses() -> None:
    rows = [
        {"runtime": "onnxruntime", "heldout_accuracy": 0.95, "latency_ms": 2.0},
        {"runtime": "openvino", "heldout_accuracy": 0.90, "latency_ms": 1.0},
        {"runtime": "torch", "error": "torchao missing"},
    ]
    assert pick_fastest(rows, 0.96, tolerance_pp=2.0)["runtime"] == "onnxruntime"  # openvino lost 6 pp
    assert pick_fastest(rows, 0.96, tolerance_pp=6.5)["runtime"] == "openvino"
    with pytest.raises(ConfigError, match="torch: torchao missing"):
        pick_fastest(rows, 0.99, tolerance_pp=0.5)


def test_selection_times_by_the_bench_clock_and_gives_the_modes_back(monkeypatch) -> None:
    from netsculpt.runtimes import bench
    from netsculpt.weights.int8_select import _latency

    ticks = iter(range(0, 10**9, 2_000_000))  # every call reads 2 ms on the bench clock
    monkeypatch.setattr(bench, "clock", lambda threads: lambda: next(ticks))
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)).train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    # two candidates on torch: each prepare enters eval; closed in prepare order, the second one's
    # "before" (eval) was restored last and the training model stayed in eval mode
    times = _latency({"float": model, "again": model}, torch.randn(2, 3), threads=1, runs=3)
    assert times == {"float": 2.0, "again": 2.0}
    assert [m.training for m in model.modules()] == before


class Segmenter(torch.nn.Module):
    """conv -> BN -> relu -> 1x1 conv, returning torchvision's ``{"out": (N, classes, H, W)}``; a second
    input (a depth map) added to the features when ``depth`` is set."""

    def __init__(self, classes: int = 2, depth: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
        )
        self.depth = torch.nn.Conv2d(1, 8, 3, padding=1) if depth else None
        self.head = torch.nn.Conv2d(8, classes, 1)

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = self.body(image)
        if self.depth is not None:
            x = x + self.depth(depth)
        return {"out": self.head(x)}


def _seg_batches(n: int, two_inputs: bool = False, seed: int = 0) -> list:
    """Real digits canvases (32 px) in batches of 4, as the dense recipes batch them, each map cut to two
    classes (digit / background: a 3x3 net learns that in seconds, not which digit); with ``two_inputs``:
    ((image, depth), map) with a depth map derived from the image."""
    from netsculpt.data.canvases import CanvasSpec, DigitsCanvases
    from netsculpt.tasks import get_task

    task = get_task("segmentation", num_classes=2)
    spec = CanvasSpec(size=32, digits=(1, 2), scale=(12, 20))
    data = DigitsCanvases("train", 4 * n, task="seg", seed=seed, spec=spec)
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=task.collate)
    batches = [(x, torch.where(y == 255, y, (y > 0).to(y.dtype))) for x, y in loader]
    if two_inputs:
        batches = [((x, x.flip(-1)), y) for x, y in batches]
    return batches


def _trained_segmenter(two_inputs: bool) -> Segmenter:
    """Trained 5 epochs on 32 other canvases (mIoU ~0.95 on the held-out ones, untrained ~0.5), so a
    candidate's drop from it measures int8 rounding."""
    from netsculpt.tasks import get_task

    task, model = get_task("segmentation", num_classes=2), Segmenter(depth=two_inputs)
    spread = (lambda xs: model(*xs)) if two_inputs else model
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(5):
        for inputs, targets in _seg_batches(8, two_inputs, seed=1):
            loss = task.loss(spread, inputs, targets)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("two_inputs", [False, True], ids=["one-input", "two-inputs"])
def test_auto_scores_a_segmenter_by_miou_and_picks_a_candidate(two_inputs, tmp_path) -> None:
    """Candidates were scored by classification accuracy on (inputs, labels): a segmenter's dict output
    failed CrossEntropy, and a second input was never passed."""
    from netsculpt.tasks import get_task
    from netsculpt.weights.int8_select import compare_int8

    task = get_task("segmentation", num_classes=2)
    model = _trained_segmenter(two_inputs)
    batches = _seg_batches(4, two_inputs)
    example = (batches[0][0][0][:1], batches[0][0][1][:1]) if two_inputs else batches[0][0][:1]
    models, rows, float_miou = compare_int8(
        model, example, batches, tmp_path, task=task,
        calib_batches=2, select_batches=2, runs=3,
    )  # fmt: skip
    spread = (lambda m: lambda xs: m(*xs)) if two_inputs else (lambda m: m)
    # the float score is the task's own mIoU on the held-out batches, computed here without compare_int8
    iou = get_task("segmentation", num_classes=2).evaluator()
    with torch.no_grad():
        for inputs, targets in batches[2:]:
            iou.update(spread(model), inputs, targets)
    assert float_miou == pytest.approx(iou.compute()["miou"])
    assert float_miou > 0.8, float_miou  # trained (see _trained_segmenter)
    assert set(models) == {"onnxruntime", "openvino", "torch"}
    for row in rows:
        assert "error" not in row, row
        assert row["metric"] == "miou" and 0 < row["heldout_accuracy"] <= 1 and row["latency_ms"] > 0
        # int8 rounding flips the argmax only where digit and background logits nearly tie (digit edges):
        # a few pixels of each digit, within 5 pp of the float mIoU
        assert abs(row["heldout_accuracy"] - float_miou) < 0.05
    best = pick_fastest(rows, float_miou, tolerance_pp=100)  # every candidate qualifies
    assert best["runtime"] == min(rows, key=lambda r: r["latency_ms"])["runtime"]


def test_a_classifier_gets_the_rows_it_got_before_plus_the_metric_name(tmp_path) -> None:
    """Scores by the classification task equal what netsculpt.train.evaluate gave (the old scoring)."""
    from netsculpt.train import evaluate
    from netsculpt.weights.int8_select import compare_int8
    from tests.weights._models import TinyNet

    model = TinyNet(classes=4).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(8, 1, 12, 12, generator=gen), torch.randint(0, 4, (8,), generator=gen)) for _ in range(4)
    ]
    models, rows, float_acc = compare_int8(
        model, batches[0][0][:1], batches, tmp_path, runtimes=("onnxruntime",), calib_batches=2,
        select_batches=2, runs=3,
    )  # fmt: skip
    assert float_acc == evaluate(model, batches[2:])[0]
    (row,) = rows
    assert set(row) == {
        "runtime", "metric", "heldout_accuracy", "size_bytes", "latency_ms", "speedup_vs_float_eager",
        "float_eager_ms", "float_runtime", "float_ms", "speedup_vs_float",
    }  # fmt: skip
    assert row["metric"] == "accuracy"
    assert row["heldout_accuracy"] == evaluate(models["onnxruntime"], batches[2:])[0]


def test_unlabelled_held_out_batches_are_refused_with_what_to_yield(tmp_path) -> None:
    from netsculpt.errors import DataError
    from netsculpt.weights.int8_select import compare_int8

    with pytest.raises(DataError, match=r"held-out \(inputs, targets\) batches.*Tensor without targets"):
        compare_int8(torch.nn.Conv2d(1, 2, 1), torch.zeros(1, 1, 4, 4), [torch.zeros(2, 1, 4, 4)] * 3,
                     tmp_path, calib_batches=2, select_batches=1)  # fmt: skip
    assert not (tmp_path / "candidates").exists()  # refused before any candidate was written


def test_pick_fastest_names_the_metric_it_compared() -> None:
    rows = [{"runtime": "openvino", "metric": "miou", "heldout_accuracy": 0.40, "latency_ms": 1.0}]
    with pytest.raises(ConfigError, match=r"no int8 runtime kept miou within tolerance_pp=1.0 .* 50.00%"):
        pick_fastest(rows, 0.5, tolerance_pp=1.0)


def test_selection_times_a_two_input_model_on_both_inputs(monkeypatch) -> None:
    """Each runtime was prepared with (example,): a two-input model was called with one argument."""
    from netsculpt.runtimes import bench
    from netsculpt.weights.int8_select import _latency

    ticks = iter(range(0, 10**9, 1_000_000))  # every call reads 1 ms on the bench clock
    monkeypatch.setattr(bench, "clock", lambda threads: lambda: next(ticks))
    model = Segmenter(depth=True)
    times = _latency({"float": model}, (torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)), threads=1, runs=3)
    assert times == {"float": 1.0}


def test_an_unfinished_attempt_of_another_runtime_is_not_loaded(tmp_path) -> None:
    """A stage folder still holding an earlier attempt's model.int8.onnx (a killed `runtime: auto` stage
    whose rerun picks another runtime) gave that stale ONNX graph back: load_artefact takes ONNX first."""
    from netsculpt.weights.int8_select import quantize_on

    stale = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()).eval()
    quantize_on(
        "onnxruntime", stale, torch.randn(1, 1, 8, 8), [torch.randn(1, 1, 8, 8)], tmp_path / "02_quantize"
    )
    text = TINY.replace("quantize: {calib_batches: 2}", "quantize: {calib_batches: 2, runtime: openvino}")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    assert set(results["after"]["latency"]) == {"openvino-int8"}
    assert not (tmp_path / "02_quantize" / "model.int8.onnx").exists()


def test_against_float_compares_with_the_fastest_float_option_on_any_runtime() -> None:
    """Timings injected: openvino int8 2.0 ms beats its own runtime's float (3.0) but not the float model
    on ONNX Runtime (1.6): not faster than the best float option, so the float model is kept."""
    from netsculpt.weights.int8_select import against_float

    rows = [
        {"runtime": "openvino", "latency_ms": 2.0, "float_runtime": "openvino", "float_ms": 3.0,
         "float_eager_ms": 4.0},
        {"runtime": "onnxruntime", "latency_ms": 2.5, "float_runtime": "onnxruntime", "float_ms": 1.6,
         "float_eager_ms": 4.0},
        {"runtime": "torch", "error": "torchao missing"},
    ]  # fmt: skip
    kept = against_float(rows[0], rows)
    assert (kept["keep"], kept["float_runtime"], kept["float_ms"], kept["int8_faster"]) == (
        "float", "onnxruntime", 1.6, False
    )  # fmt: skip
    assert "1.25x SLOWER than the float model on onnxruntime (1.600 ms)" in kept["reason"]
    assert against_float(rows[0], rows, if_slower="int8")["keep"] == "int8"
    faster = against_float({**rows[0], "latency_ms": 0.8}, rows)
    assert faster["keep"] == "int8" and faster["int8_faster"] is True
    eager_only = [{"runtime": "torch", "latency_ms": 5.0, "float_runtime": "compile", "float_eager_ms": 4.0}]
    assert against_float(eager_only[0], eager_only)["float_runtime"] == "torch"  # compile failed: eager
