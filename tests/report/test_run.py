"""Both results shapes, and partial files, read into the same view of a run."""

from __future__ import annotations

from netsculpt.report import load_run


def test_compress_shape_points_roles_and_widths(make_run, compress_results) -> None:
    run = load_run(make_run("lenet", compress_results))
    assert run.title == "lenet5 on mnist5k" and run.recipe is None
    assert [(p.name, p.role) for p in run.points] == [("before", "baseline"), ("after", "final")]
    assert [s.name for s in run.stages] == ["baseline", "prune", "finetune"]
    assert run.stages[1].accuracy == 0.91 and run.stages[1].plan is not None  # accuracy before fine-tuning
    widths = {w.name: (w.before, w.after) for w in run.widths}
    # LeNet-5 is 20-50-500-10 wide; a 50 % prune halves every layer but the 10-class output
    assert widths == {"conv1": (20, 10), "conv2": (50, 25), "fc1": (500, 250), "fc2": (10, 10)}
    assert run.settings["criterion"] == "l1" and "options" not in run.settings  # empty values dropped


def test_recipe_shape_uses_points_and_stage_metrics(make_run, recipe_results) -> None:
    run = load_run(make_run("recipe", recipe_results))
    assert run.label == "lenet5_demo" and run.recipe.startswith("# a recipe")
    assert [p.role for p in run.points] == ["baseline", None, "final"]
    assert [s.kind for s in run.stages] == ["baseline", "prune", "finetune"]
    assert run.stages[1].plan is not None and run.stages[1].seconds == 2.0
    assert run.stages[2].params == recipe_results["after"]["params"]


def test_points_derived_from_stage_metrics_when_not_listed(make_run, recipe_results) -> None:
    del recipe_results["points"], recipe_results["before"], recipe_results["after"]
    run = load_run(make_run("no-points", recipe_results))
    assert [p.name for p in run.points] == ["00_baseline", "01_prune", "02_finetune"]
    assert run.before.params > run.after.params  # first and last stage metrics stand in for before/after
    assert run.widths and run.widths[0].before == 20


def test_summary_falls_back_to_points(make_run, recipe_results) -> None:
    slim = {"version": 1, "points": recipe_results["points"]}
    run = load_run(make_run("points-only", slim))
    assert run.before.name == "00_baseline" and run.after.name == "02_finetune"
    assert run.widths == [] and run.widths_source == "not recorded"


def test_widths_from_plans_when_layers_are_missing(make_run, compress_results) -> None:
    compress_results["before"]["layers"] = []
    compress_results["after"]["layers"] = []
    run = load_run(make_run("plans", compress_results))
    widths = {w.name: (w.before, w.after) for w in run.widths}
    assert widths["conv1"] == (20, 10) and widths["fc1"] == (500, 250)
    assert not any(":" in name for name in widths)  # "conv1:in" is the input group, not a layer
    assert run.widths_source.startswith("prune plans")


def test_search_pareto_marks_points_and_adds_unlisted_ones(make_run, recipe_results) -> None:
    recipe_results["pareto"] = ["01_prune", {"name": "cand7", "accuracy": 0.5, "macs": 1000}]
    run = load_run(make_run("search", recipe_results))
    marked = [p.name for p in run.points if p.on_search_front]
    assert marked == ["01_prune", "cand7"]
    assert run.points[-1].name == "cand7" and run.points[-1].role is None  # still "final" is the last stage
    assert [p.name for p in run.points if p.role == "final"] == ["02_finetune"]


def test_minimal_file_gives_an_empty_but_valid_run(make_run) -> None:
    run = load_run(make_run("empty", {"version": 1}))
    assert run.points == [] and run.stages == [] and run.before is None and run.title == "empty"


def test_final_model_is_the_last_stages_point_even_if_candidates_follow(make_run, recipe_results) -> None:
    recipe_results["points"].append({"name": "cand1", "stage": "search", "accuracy": 0.6, "macs": 10})
    run = load_run(make_run("candidates-last", recipe_results))
    assert [p.name for p in run.points if p.role] == ["00_baseline", "02_finetune"]
