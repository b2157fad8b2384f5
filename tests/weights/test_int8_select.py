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
    assert (
        info["runtime"] == min(rows, key=lambda r: r["latency_ms"])["runtime"]
    )  # tolerance 100: all qualify
    names = {"onnxruntime": "model.int8.onnx", "openvino": "model.int8.xml", "torch": "model.int8.pt2"}
    assert (tmp_path / "02_quantize" / names[info["runtime"]]).is_file()
    assert results["after"]["size_bytes"] == next(
        r["size_bytes"] for r in rows if r["runtime"] == info["runtime"]
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
