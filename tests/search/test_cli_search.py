"""`netsculpt search`: outputs in DIR, a loadable pruned model within budget, and --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main

SMALL = [
    "--data", "mnist5k", "--limit", "300", "--val-size", "100", "--eval-batch-size", "50",
    "--eval-batches", "1", "--full-batches", "2",
]  # fmt: skip


@pytest.mark.slow
def test_search_writes_plan_history_plot_and_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    torch.manual_seed(0)  # a saved model has fixed weights, so --resume finds the same fingerprint
    ns.save(ns.create_model("lenet5"), tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    argv = ["--quiet", "search", str(tmp_path / "base"), "--method", "greedy", "--target-macs", "0.5",
            "--step", "0.25", *SMALL, "--finetune-epochs", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    for name in ("plan.json", "search.json", "trajectory.json", "trajectory.png", "search_state.json"):
        assert (out / name).is_file(), name
    plan = json.loads((out / "plan.json").read_text())
    assert plan["meta"]["search"] == "greedy" and plan["meta"]["predicted"]["macs"] <= 0.5
    x = torch.randn(1, 1, 28, 28)
    small, base = ns.load(out / "model"), ns.create_model("lenet5")
    assert ns.measure(small, x, latency=False).macs <= 0.5 * ns.measure(base, x, latency=False).macs
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "test accuracy" in printed and "pruned model for macs=0.5 saved to" in printed
    assert main([*argv, "--resume"]) == 0  # a finished search resumes to the same plan
    assert json.loads((out / "plan.json").read_text())["keep"] == plan["keep"]


def test_search_needs_a_target(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["search", "lenet5", "--out", "x"])
    assert "target" in capsys.readouterr().err


@pytest.mark.slow
def test_n2n_summary_counts_students_and_labels_the_distilled_accuracy(tmp_path: Path, capsys) -> None:
    """N2N scores students after a short distillation, outside the candidate cache: the summary counted
    none of them and showed that accuracy as if it were the saved (undistilled) model's."""
    argv = ["--quiet", "search", "resnet20_cifar", "--method", "n2n", "--target-macs", "0.5", *SMALL,
            "--remove-episodes", "2", "--shrink-episodes", "2", "--rollouts", "2", "--kd-steps", "1",
            "--adapt-bn-batches", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    evaluated = json.loads((tmp_path / "run" / "search.json").read_text())["evaluated"]
    assert evaluated["full"] > 0
    assert f"scored 0 cheap + {evaluated['full']} full candidates" in printed
    assert "after short KD" in printed


@pytest.mark.parametrize(("given", "expected"), [("hw", "hw"), ("auto", "auto"), ("16", 16), (None, 1)])
def test_round_to_takes_what_prune_and_search_config_take(given, expected) -> None:
    """`--round-to hw` was refused ("invalid int value") though prune and SearchConfig take it."""
    from netsculpt.cli import build_parser
    from netsculpt.cli.search_cmd import _config

    argv = ["search", "lenet5", "--method", "greedy", "--target-macs", "0.5", "--out", "x"]
    args = build_parser().parse_args([*argv, *(["--round-to", given] if given else [])])
    assert _config(args).round_to == expected


def test_a_bad_round_to_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "lenet5", "--target-macs", "0.5", "--round-to", "hws", "--out", "x"])
    assert exit_info.value.code == 2 and "round_to must be an integer >= 1" in capsys.readouterr().err


def test_a_small_split_holds_out_a_share_of_it_by_default(capsys, tmp_path: Path) -> None:
    # as prune --depth-blocks and triage (docs/depth.md): a fixed 500 failed any --limit of 500 or less,
    # "the held-out split must have between 1 and 299 samples, got 500"
    argv = ["search", "lenet5", "--method", "sensitivity", "--ratios", "0.5", "--target-macs", "0.5"]
    argv += ["--data", "mnist5k", "--limit", "300", "--out", str(tmp_path / "o")]
    assert main(["--quiet", *argv]) == 0, capsys.readouterr().err


@pytest.mark.slow
def test_search_ignored_keeps_layers_whole(tmp_path: Path) -> None:
    argv = ["--quiet", "search", "lenet5", "--method", "greedy", "--target-macs", "0.7", "--step", "0.25",
            *SMALL, "--ignored", "fc*", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0  # fc1 keeps its inputs too: conv2's group; conv1 is what is left to cut
    assert set(json.loads((tmp_path / "plan.json").read_text())["keep"]) == {"conv1"}


def test_search_ignored_refuses_a_misspelt_class(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["search", "lenet5", "--target-macs", "0.5", "--ignored", "nn.Linaer", "--out", "x"])
    assert "'nn.Linaer' is not a torch.nn module class; did you mean Linear?" in capsys.readouterr().err
