"""Running recipes: artifacts, results.json, resume after an interruption, small runs of every example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import ConfigError, NetsculptError
from netsculpt.pipeline import load_recipe, parse_recipe, run_recipe
from netsculpt.pipeline import stages as stage_module

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SMALL = """
name: tiny
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
  - finetune: {epochs: 1}
outputs: {latency_runs: 2, report: false}
"""


def test_run_writes_artifacts_and_results(tmp_path) -> None:
    results = run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    assert [p.name for p in sorted(tmp_path.glob("0*"))] == ["00_baseline", "01_prune", "02_finetune"]
    for d in ("00_baseline", "01_prune", "02_finetune"):
        assert (tmp_path / d / "DONE").is_file() and (tmp_path / d / "model" / "model.safetensors").is_file()
    assert (tmp_path / "01_prune" / "plan.json").is_file() and (tmp_path / "run.log").stat().st_size > 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["version"] == 1 and data == json.loads(json.dumps(results))
    assert data["after"]["params"] < data["before"]["params"]
    assert [p["stage"] for p in data["points"]] == ["baseline", "prune", "finetune"]


def test_each_training_stage_gets_its_own_augmentation(tmp_path) -> None:
    from netsculpt.data import RandomShift
    from netsculpt.pipeline.run_context import build_context
    from netsculpt.train import TrainConfig

    ctx = build_context(parse_recipe(SMALL), tmp_path)
    assert not isinstance(ctx.train_loader.dataset, RandomShift)  # calibration and search read clean data
    config = TrainConfig(augment=True, augment_shift=1)
    first, again = ctx.train_loader_for(config), ctx.train_loader_for(config)
    assert first.dataset.padding == 1
    # fresh and seeded: a resumed run's stage sees the batches it would have seen without the interruption
    assert all(torch.equal(a, b) for a, b in zip(next(iter(first)), next(iter(again)), strict=True))
    assert not isinstance(ctx.train_loader_for(TrainConfig()).dataset, RandomShift)


def test_interrupted_run_resumes_without_redoing_stages(tmp_path, monkeypatch) -> None:
    recipe = parse_recipe(SMALL)
    calls: list[str] = []
    real = dict(stage_module.STAGES)

    def failing_finetune(*args, **kwargs):
        raise KeyboardInterrupt  # the user pressed Ctrl-C during fine-tuning

    def counting(kind):
        def run(*args, **kwargs):
            calls.append(kind)
            return real[kind](*args, **kwargs)

        return run

    monkeypatch.setitem(stage_module.STAGES, "baseline", counting("baseline"))
    monkeypatch.setitem(stage_module.STAGES, "prune", counting("prune"))
    monkeypatch.setitem(stage_module.STAGES, "finetune", failing_finetune)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, SMALL, tmp_path)
    assert not (tmp_path / "results.json").exists()
    monkeypatch.setitem(stage_module.STAGES, "finetune", counting("finetune"))
    run_recipe(recipe, SMALL, tmp_path)
    assert calls == ["baseline", "prune", "finetune"]  # baseline and prune ran once


def _count_stage_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    for kind in ("baseline", "prune", "finetune"):
        real = stage_module.STAGES[kind]

        def counting(*args, _real=real, _kind=kind, **kwargs):
            calls.append(_kind)
            return _real(*args, **kwargs)

        monkeypatch.setitem(stage_module.STAGES, kind, counting)
    return calls


def test_a_folder_made_by_another_recipe_is_protected(tmp_path, monkeypatch) -> None:
    run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    calls = _count_stage_calls(monkeypatch)
    other = SMALL.replace("limit: 200", "limit: 180")  # other data: the baseline itself would differ
    with pytest.raises(ConfigError, match="different recipe"):
        run_recipe(parse_recipe(other), other, tmp_path)
    assert calls == []
    run_recipe(parse_recipe(other), other, tmp_path, force=True)  # --force starts every stage over
    assert calls == ["baseline", "prune", "finetune"]


def test_edits_no_stage_depends_on_keep_every_stage_and_others_are_named(tmp_path, monkeypatch) -> None:
    run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    calls = _count_stage_calls(monkeypatch)
    safe = SMALL.replace("name: tiny", "name: tiny2").replace("report: false", "report: true")
    safe += "compare_random: true\n"  # the control runs beside the kept stages
    results = run_recipe(parse_recipe(safe), safe, tmp_path)
    assert calls == ["prune", "finetune"] and results["compare_random"]["stages"]  # only the control ran
    assert (tmp_path / "report.html").is_file()
    other = safe.replace("seed", "seed").replace("limit: 200", "limit: 180") + "seed: 3\n"
    with pytest.raises(ConfigError, match=r"\(data.limit, seed differ, which every stage depends on\)"):
        run_recipe(parse_recipe(other), other, tmp_path)


def test_force_starts_the_random_control_over_too(tmp_path, monkeypatch) -> None:
    text = SMALL + "compare_random: true\n"
    run_recipe(parse_recipe(text), text, tmp_path)
    stale = tmp_path / "compare_random" / "02_finetune" / "stale.txt"
    stale.write_text("from the first run")
    calls = _count_stage_calls(monkeypatch)
    run_recipe(parse_recipe(text), text, tmp_path, force=True)
    assert calls == ["baseline", "prune", "finetune", "prune", "finetune"]  # main stages, then the control
    assert not stale.exists()


def test_an_edited_stage_keeps_the_stages_before_it_and_redoes_the_rest(tmp_path, monkeypatch) -> None:
    first = run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    calls = _count_stage_calls(monkeypatch)
    other = SMALL.replace("conv2: 6", "conv2: 5")
    again = run_recipe(parse_recipe(other), other, tmp_path)
    assert calls == ["prune", "finetune"]  # the baseline is kept
    assert again["after"]["params"] < first["after"]["params"]  # one conv2 filter fewer
    assert [h["epoch"] for h in again["stages"][2]["info"]["history"]] == [1]  # not resumed from the old
    assert (tmp_path / "recipe.yaml").read_text() == other


def test_a_folder_whose_first_run_did_nothing_takes_the_corrected_recipe(tmp_path) -> None:
    broken = SMALL.replace(
        "data: {name: mnist5k, limit: 200}", f"data: {{name: imagefolder, root: {tmp_path / 'no'}}}"
    )
    with pytest.raises(NetsculptError, match="imagefolder"):
        run_recipe(parse_recipe(broken), broken, tmp_path)
    assert (tmp_path / "recipe.yaml").read_text() == broken
    results = run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    assert results["after"]["params"] > 0


# 64 images a split (a detector's 64 canvases: 4 batches of 16) and one timed run a guard round: every
# stage still runs, trains, scores and is timed; 120 images and 5 runs only cost time
FAST = [
    "data.limit=64", "baseline.train.epochs=1", "baseline.train.warmup_epochs=0", "outputs.latency_runs=2",
    "outputs.report=false", "deploy.guard_runs=1",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_recipe_runs_small(path: Path, tmp_path) -> None:
    recipe, text = load_recipe(path)
    overrides = list(FAST)
    for i, s in enumerate(recipe.stages):
        if s.kind in ("finetune", "distill", "push"):
            overrides.append(f"stages.{i}.{s.kind}.epochs=1")
            overrides.append(f"stages.{i}.{s.kind}.warmup_epochs=0")
            if s.early_stop is not None:  # 64 training images: hold out a few, not the recipe's 500
                overrides.append(f"stages.{i}.{s.kind}.early_stop.holdout=16")
        if s.kind == "prune":
            overrides.append(f"stages.{i}.prune.calib_batches=1")
    recipe, _ = load_recipe(path, overrides)
    results = run_recipe(recipe, text, tmp_path)
    assert results["after"]["macs"] < results["before"]["macs"]


def test_cluster_stage_reports_the_packed_file_size(tmp_path) -> None:
    text = SMALL.replace("  - finetune: {epochs: 1}\n", "  - cluster: {method: kmeans, bits: 4}\n")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    saved = (tmp_path / "02_cluster" / "model" / "model.safetensors").stat().st_size
    assert results["after"]["size_bytes"] == saved
    # 4-bit indices + fp16 tables: at least 5x under float32 for the pruned LeNet's weights
    assert saved * 5 < results["stages"][1]["metrics"]["size_bytes"]


def test_sparsify_stage_stores_a_sparse_model_smaller(tmp_path) -> None:
    options = "sparsity: 0.9, method: gap, partitions: 2, epochs: 3, restart_lr: false, skip: [conv1]"
    stage = f"  - sparsify: {{{options}}}\n"
    text = SMALL.replace("  - finetune: {epochs: 1}\n", stage)
    results = run_recipe(parse_recipe(text), text, tmp_path)
    assert results["stages"][-1]["info"]["sparsity"]["restart_lr"] is False  # one lr schedule, plumbed
    model = ns.load(tmp_path / "02_sparsify" / "model")
    weight = model.fc1.weight
    assert abs(float((weight == 0).float().mean()) - 0.9) < 0.01  # at the target, up to one weight's rounding
    assert not bool((model.conv1.weight == 0).any())  # skipped: left dense
    # 10% of the weights as float32 values plus a mask: well under half of the pruned model's file
    saved = (tmp_path / "02_sparsify" / "model" / "model.safetensors").stat().st_size
    assert results["after"]["size_bytes"] == saved
    assert saved * 2 < results["stages"][1]["metrics"]["size_bytes"]
    with pytest.raises(ConfigError, match="conv9"):
        bad = SMALL.replace("  - finetune: {epochs: 1}\n", "  - sparsify: {skip: [conv9]}\n")
        run_recipe(parse_recipe(bad), bad, tmp_path / "bad")


def test_quantize_stage_measures_the_int8_onnx_model(tmp_path, capsys) -> None:
    text = SMALL.replace("  - finetune: {epochs: 1}\n", "  - quantize: {calib_batches: 2}\n")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    onnx = tmp_path / "02_quantize" / "model.int8.onnx"
    assert onnx.is_file() and results["after"]["size_bytes"] == onnx.stat().st_size
    assert results["after"]["params"] == results["stages"][1]["metrics"]["params"]
    # timed on its own runtime only: never set against the float model's PyTorch time as one number
    assert results["after"]["latency_ms"] is None and 0 <= results["after"]["accuracy"] <= 1
    (key,) = results["after"]["latency"]
    assert key.endswith("-int8") and results["after"]["latency"][key]["1"] > 0
    again = run_recipe(parse_recipe(text), text, tmp_path)  # resumes from the ONNX file
    assert again["after"]["size_bytes"] == results["after"]["size_bytes"]
    from netsculpt.report import write_report

    page = write_report(tmp_path).read_text()
    assert "after int8" in page
    from netsculpt.pipeline import print_summary

    print_summary(results)
    assert "after: int8" in capsys.readouterr().out


@pytest.mark.slow
def test_search_stage_meets_its_macs_target(tmp_path) -> None:
    text = SMALL.replace("  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}\n",
                         "  - search: {method: greedy, target: {macs: 0.5}}\n")  # fmt: skip
    results = run_recipe(parse_recipe(text), text, tmp_path)
    assert results["stages"][1]["metrics"]["macs"] <= 0.5 * results["before"]["macs"]
    assert (tmp_path / "01_search" / "plan.json").is_file()


def test_search_stage_needs_training_data_left_after_its_held_out_split(tmp_path) -> None:
    text = SMALL.replace("  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}\n",
                         "  - search: {method: greedy, target: {macs: 0.5}, val_size: 5000}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="val_size=5000 leaves no training data"):
        run_recipe(parse_recipe(text), text, tmp_path)


def test_compare_random_reruns_the_stages_with_a_random_criterion(tmp_path, capsys) -> None:
    from netsculpt.pipeline import print_summary

    text = SMALL + "compare_random: true\n"
    results = run_recipe(parse_recipe(text), text, tmp_path)
    compare = results["compare_random"]
    assert [s["kind"] for s in compare["stages"]] == ["prune", "finetune"]
    assert (tmp_path / "compare_random" / "01_prune" / "DONE").is_file()
    plan = json.loads((tmp_path / "compare_random" / "01_prune" / "plan.json").read_text())
    ours = json.loads((tmp_path / "01_prune" / "plan.json").read_text())
    assert plan["meta"]["criterion"] == "random" and ours["meta"]["criterion"] == "l1"
    assert compare["accuracy"] == compare["stages"][-1]["accuracy"]
    again = run_recipe(parse_recipe(text), text, tmp_path)  # resumes: nothing is redone
    assert again["compare_random"]["stages"] == compare["stages"]
    print_summary(results)
    out = capsys.readouterr().out
    assert "accuracy by stage: baseline" in out and "same recipe, random criterion: prune" in out
    from netsculpt.report import write_report

    write_report(tmp_path)
    assert "same stages, random criterion" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: lenet5", "name: lenet55", "did you mean: lenet5"),
        ("criterion: l1", "criterion: taylr", "did you mean 'taylor'"),
    ],
)
def test_misspelt_names_are_refused_when_the_recipe_is_read(old: str, new: str, message: str) -> None:
    """They surfaced only after the baseline had trained (and then locked the run folder)."""
    with pytest.raises(ConfigError, match=f"(?i){message}"):
        parse_recipe(SMALL.replace(old, new))


def test_a_depth_stage_still_takes_a_channel_criterion() -> None:
    text = SMALL.replace("model: {name: lenet5}", "model: {name: resnet20_cifar}")
    text = text.replace(
        "  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}",
        "  - prune_depth: {criterion: l1, blocks: 1}",
    )
    recipe = parse_recipe(text)
    assert (recipe.stages[0].kind, recipe.stages[0].criterion) == ("prune_depth", "l1")


@pytest.mark.slow
def test_the_random_control_of_a_compound_run_starts_at_the_baseline_resolution(tmp_path) -> None:
    text = """
name: rc
model: {name: resnet20_cifar}
data: {name: mnist5k, limit: 64, resize: 32, channels: 3, batch_size: 32}
baseline: {train: {epochs: 1, warmup_epochs: 0}}
stages:
  - compound: {macs: 0.5, criterion: l1, val_size: 16}
  - finetune: {epochs: 1, warmup_epochs: 0}
compare_random: true
outputs: {latency_runs: 1, report: false}
deploy: {guard: false}
"""
    from netsculpt.io import read_spec

    run_recipe(parse_recipe(text), text, tmp_path)

    def shape(folder: str) -> list[int]:
        return read_spec(tmp_path / folder / "model")["extra"]["input_shape"]

    main = shape("01_compound")
    assert main[2:] != [32, 32] and shape("compare_random/01_compound") == main == shape("02_finetune")
    assert shape("compare_random/02_finetune") == main
    again = run_recipe(parse_recipe(text), text, tmp_path)  # resumed: the control's size is restored too
    assert again["compare_random"]["stages"][1]["accuracy"] is not None
