"""After-stage latency guards: a slower stage is flagged in results, summary and report; fail_if_slower stops
the run with the numbers and keeps the finished stages."""

from __future__ import annotations

import json

import pytest
import torch

import netsculpt as ns
from netsculpt.pipeline import guards, parse_recipe, run_recipe
from netsculpt.pipeline.guards import SlowerStageError
from netsculpt.pipeline.summary import stage_lines

RECIPE = """
name: guarded
model: {name: lenet5}
data: {name: mnist5k, limit: 100}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
outputs: {latency_runs: 2, report: true}
deploy: {runtime: torch, guard_runs: 2%s}
"""


def _slower_output(monkeypatch) -> None:
    """Deterministic timings: the stage's output takes 2 ms, its input 1 ms (a pruned-but-slower model)."""

    def fake_timer(model, runtime, x, tmp, name):
        return lambda runs: 2.0 if name == "output" else 1.0

    monkeypatch.setattr(guards, "_timer", fake_timer)


def test_a_slower_stage_is_flagged_in_results_summary_and_report(tmp_path, monkeypatch) -> None:
    _slower_output(monkeypatch)
    text = RECIPE % ""
    results = run_recipe(parse_recipe(text), text, tmp_path)
    guard = results["stages"][1]["guard"]
    assert guard["runtime"] == "torch" and guard["batch"] == 1 and guard["threads"] == 1
    assert (guard["input_ms"], guard["output_ms"], guard["slower"]) == (1.0, 2.0, True)
    assert "guard" not in results["stages"][0]  # the baseline has no input to compare with
    lines = stage_lines(results)
    assert any("SLOWER" in line and "1.000 ms -> 2.000 ms" in line for line in lines)
    report = (tmp_path / "report.html").read_text()
    assert "latency vs input" in report and "SLOWER 2.00x time on torch b1" in report


def test_fail_if_slower_stops_with_the_numbers_and_keeps_the_work(tmp_path, monkeypatch) -> None:
    _slower_output(monkeypatch)
    text = RECIPE % ", fail_if_slower: true"
    with pytest.raises(SlowerStageError, match=r"01_prune.*1\.000 ms -> 2\.000 ms.*2\.00x SLOWER"):
        run_recipe(parse_recipe(text), text, tmp_path)
    assert (tmp_path / "01_prune" / "DONE").is_file()  # the stage's work is kept ...
    assert json.loads((tmp_path / "01_prune" / "stage.json").read_text())["guard"]["slower"] is True
    assert not (tmp_path / "results.json").exists()  # ... but the run stopped there
    # the same folder resumes and stops again with the recorded numbers, or continues when told to
    with pytest.raises(SlowerStageError):
        run_recipe(parse_recipe(text), text, tmp_path)
    go_on = parse_recipe(text, overrides=["deploy.fail_if_slower=false"])
    assert run_recipe(go_on, text, tmp_path)["stages"][1]["guard"]["slower"] is True


def test_a_faster_stage_passes_and_the_real_timer_measures_both_sides(tmp_path) -> None:
    deploy = parse_recipe(RECIPE % "").deploy
    big = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3))
    x = torch.randn(1, 3, 32, 32)
    small = ns.prune(big, x, ratio=0.5, round_to=1)
    guard = guards.check_stage(big, small, x, deploy)
    assert guard["input_ms"] > 0 and guard["output_ms"] > 0
    assert guard["speedup"] == pytest.approx(guard["input_ms"] / guard["output_ms"])
    assert isinstance(guard["slower"], bool)
    onnx = guards.check_stage(big, small, x, deploy.model_copy(update={"runtime": "onnxruntime"}))
    assert onnx["runtime"] == "onnxruntime" and onnx["output_ms"] > 0
    assert "error" in guards.check_stage(None, small, x, deploy)  # an input that cannot be copied


def test_unknown_deploy_runtime_is_refused() -> None:
    from netsculpt.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown runtime 'tpu'"):
        parse_recipe(RECIPE.replace("runtime: torch", "runtime: tpu") % "")


def test_a_slowdown_within_the_margin_is_not_shouted() -> None:
    from netsculpt.pipeline.guards import describe

    base = {"runtime": "torch", "batch": 1, "threads": 1, "input_ms": 1.0}
    within = describe("prune", {**base, "output_ms": 1.04, "speedup": 1 / 1.04, "slower": False})
    past = describe("prune", {**base, "output_ms": 1.5, "speedup": 1 / 1.5, "slower": True})
    assert "SLOWER" not in within and "slower (within the margin)" in within
    assert "1.50x SLOWER" in past


def test_the_advised_override_resumes_the_folder_as_the_cli_writes_it(tmp_path, monkeypatch) -> None:
    """The error says "rerun with --set deploy.fail_if_slower=false": the CLI keeps that override in the
    folder's recipe text, which must not count as "a different recipe" (only --force got past before)."""
    from netsculpt.pipeline.recipe_change import with_overrides

    _slower_output(monkeypatch)
    text = RECIPE % ", fail_if_slower: true"
    with pytest.raises(SlowerStageError, match=r"--set deploy\.fail_if_slower=false"):
        run_recipe(parse_recipe(text), text, tmp_path)
    done = (tmp_path / "01_prune" / "DONE").stat().st_mtime_ns
    go_on = ["deploy.fail_if_slower=false"]
    results = run_recipe(parse_recipe(text, overrides=go_on), with_overrides(text, go_on), tmp_path)
    assert results["stages"][1]["guard"]["slower"] is True
    assert (tmp_path / "01_prune" / "DONE").stat().st_mtime_ns == done  # resumed, not redone


def test_a_wider_margin_rejudges_the_kept_stage(tmp_path, monkeypatch) -> None:
    """The output takes 1.4 ms, the input 1 ms: slower by the default 5 % margin, not by a 50 % one."""
    from netsculpt.pipeline.recipe_change import with_overrides

    def timer(model, runtime, x, tmp, name):
        return lambda runs: 1.4 if name == "output" else 1.0

    monkeypatch.setattr(guards, "_timer", timer)
    text = RECIPE % ", fail_if_slower: true"
    with pytest.raises(SlowerStageError):
        run_recipe(parse_recipe(text), text, tmp_path)
    wide = ["deploy.slower_margin=0.5"]
    results = run_recipe(parse_recipe(text, overrides=wide), with_overrides(text, wide), tmp_path)
    assert results["stages"][1]["guard"]["slower"] is False


@pytest.mark.runtimes
def test_an_openvino_int8_output_is_timed_against_its_input_on_openvino(tmp_path) -> None:
    """The guard compares like with like: an OpenVINO int8 stage's float input is timed on OpenVINO too
    (it was timed on PyTorch eager and the int8 artefact on OpenVINO, under the label "torch")."""
    from netsculpt.weights.int8_select import quantize_on

    deploy = parse_recipe(RECIPE % "").deploy  # deploy.runtime: torch
    model = ns.create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    q = quantize_on("openvino", model, x, [torch.randn(4, 1, 28, 28)], tmp_path)
    seen: list[tuple[str, str]] = []
    real = guards._timer

    def spy(m, runtime, x, tmp, name):
        seen.append((name, runtime))
        return real(m, runtime, x, tmp, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(guards, "_timer", spy)
        guard = guards.check_stage(model, q, x, deploy)
    assert guard["runtime"] == "openvino" and "error" not in guard, guard
    assert seen == [("input", "openvino"), ("output", "openvino")]
    assert guard["input_ms"] > 0 and guard["output_ms"] > 0


@pytest.mark.parametrize(("owner", "timed_on"), [("openvino", "openvino"), ("torch", "compile")])
def test_an_int8_artefact_is_timed_on_its_own_runtime_against_its_input(monkeypatch, owner, timed_on) -> None:
    # an OpenVINO graph was timed "on torch" through its wrapper against the eager float model, and a PT2E
    # program in eager mode (none of its int8 kernels run): neither compared like with like
    class Artefact(torch.nn.Module):
        deployed_runtime = owner

    used: list[str] = []

    def fake_timer(model, runtime, x, tmp, name):
        used.append(runtime)
        return lambda runs: 1.0

    monkeypatch.setattr(guards, "_timer", fake_timer)
    deploy = parse_recipe(RECIPE % "").deploy  # runtime: torch
    guard = guards.check_stage(torch.nn.Linear(2, 2), Artefact(), torch.randn(1, 2), deploy)
    assert guard["runtime"] == timed_on and used == [timed_on, timed_on]


DEPTH = """
name: guarded_depth
model: {name: resnet20_cifar}
data: {name: mnist5k, limit: 96, resize: 32, channels: 3, batch_size: 32}
baseline: {train: {epochs: 1, warmup_epochs: 0}}
stages:
  - %s
outputs: {latency_runs: 1, report: false}
deploy: {runtime: torch, guard_runs: 1}
"""


@pytest.mark.parametrize(
    "stage", ["prune_depth: {criterion: l1, blocks: 1}", "compound: {macs: 0.5, criterion: l1, val_size: 32}"]
)
def test_depth_and_compound_stages_are_guarded_each_side_at_its_own_input_size(stage, tmp_path, monkeypatch):
    """Both change speed (blocks removed; depth x width x resolution) and had no guard."""
    shapes: dict[str, list[int]] = {}

    def fake_timer(model, runtime, x, tmp, name):
        shapes[name] = list(x.shape)
        return lambda runs: 2.0 if name == "output" else 1.0

    monkeypatch.setattr(guards, "_timer", fake_timer)
    text = DEPTH % stage
    results = run_recipe(parse_recipe(text), text, tmp_path)
    guard = results["stages"][1]["guard"]
    assert (guard["input_ms"], guard["output_ms"], guard["slower"]) == (1.0, 2.0, True)
    assert shapes["input"] == [1, 3, 32, 32]  # the stage's input at the baseline's size
    if stage.startswith("compound"):  # the output at the size the stage chose, both recorded
        size = results["stages"][1]["info"]["resolution"]
        size = [size, size] if isinstance(size, int) else list(size)
        assert shapes["output"] == [1, 3, *size] == guard["output_shape"]
        assert guard["input_shape"] == [1, 3, 32, 32]
    else:
        assert shapes["output"] == [1, 3, 32, 32] and "input_shape" not in guard
    assert any("SLOWER" in line for line in stage_lines(results))


def test_the_summary_times_baseline_and_final_model_side_by_side(tmp_path, monkeypatch) -> None:
    """The summary's latency ratio divided the baseline's time, taken right after it trained, by the final
    model's, taken minutes later: on a shared machine `make demo` printed 0.81-1.00x "faster" for a model
    its prune guard timed 1.7-2.0x faster. Both are now timed alternately at the end of the run."""
    from io import StringIO

    from rich.console import Console

    from netsculpt.pipeline.summary import print_summary

    seen: list[tuple[int, str]] = []

    def fake_timer(model, runtime, x, tmp, name):
        seen.append((model.conv1.out_channels, name))
        return lambda runs: 2.0 if name == "input" else 1.0

    monkeypatch.setattr(guards, "_timer", fake_timer)
    text = RECIPE % ""
    results = run_recipe(parse_recipe(text), text, tmp_path)
    side = results["latency_side_by_side"]
    assert (side["input_ms"], side["output_ms"], side["speedup"], side["runtime"]) == (2.0, 1.0, 2.0, "torch")
    assert seen[-2:] == [(20, "input"), (4, "output")]  # the unpruned baseline against the pruned model
    out = StringIO()
    print_summary(results, Console(file=out, width=200))
    assert "latency (batch 1, torch)" in out.getvalue() and "2.00x faster" in out.getvalue()
    assert json.loads((tmp_path / "results.json").read_text())["latency_side_by_side"]["speedup"] == 2.0
    assert "latency (torch, batch 1, side by side)" in (tmp_path / "report.html").read_text()
    off = RECIPE.replace("guard_runs: 2%s", "guard: false%s") % ""
    assert "latency_side_by_side" not in run_recipe(parse_recipe(off), off, tmp_path / "off")
