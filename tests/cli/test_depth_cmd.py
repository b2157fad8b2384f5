"""`netsculpt prune --depth-blocks`, `netsculpt fold`, `netsculpt triage` and the prune_depth stage."""

from __future__ import annotations

import json

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main
from netsculpt.models import MODELS, register_model
from tests.depth.conftest import Mixed


def _code_shortcut_net(num_classes: int, in_channels: int) -> torch.nn.Module:
    """One block whose zero-padding shortcut is code in its forward: not removable."""
    return Mixed()


@pytest.fixture
def code_shortcut_model(monkeypatch) -> str:
    """Registers the net for one test only: a module-level registration leaked into the zoo tests, which
    parametrise over every registered model."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # restored after the test
    register_model("test_code_shortcut_net", input_shape=(3, 16, 16), num_classes=4)(_code_shortcut_net)
    return "test_code_shortcut_net"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_depth_blocks_then_fold(capsys, tmp_path) -> None:
    code, out, err = run(
        capsys, "prune", "resnet20_cifar", "--depth-blocks", "3", "--out", str(tmp_path / "d")
    )
    assert code == 0, err
    small = ns.load(tmp_path / "d")
    assert [e["kind"] for e in small.netsculpt_spec["edits"]] == ["prune_depth"]
    assert len(small.netsculpt_spec["edits"][0]["blocks"]) == 3
    code, out, err = run(capsys, "fold", str(tmp_path / "d"), "--out", str(tmp_path / "f"))
    assert code == 0, err and "merges" in out
    folded = ns.load(tmp_path / "f")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (folded(x) - small.eval()(x)).abs().max() <= 1e-4


def test_prune_depth_too_many_blocks_is_one_line_error(capsys, tmp_path) -> None:
    code, _, err = run(
        capsys, "prune", "resnet20_cifar", "--depth-blocks", "99", "--out", str(tmp_path / "d")
    )
    assert code == 1 and "this model has 9 removable blocks" in err


def test_prune_depth_blocks_by_name(capsys, tmp_path) -> None:
    argv = ["prune", "resnet20_cifar", "--depth-blocks", "layer1.1,layer3.2", "--out", str(tmp_path / "d")]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    edit = ns.load(tmp_path / "d").netsculpt_spec["edits"][0]
    assert [b["name"] for b in edit["blocks"]] == ["layer1.1", "layer3.2"]


def test_unremovable_block_by_name_says_why(capsys, tmp_path, code_shortcut_model) -> None:
    argv = ["prune", code_shortcut_model, "--depth-blocks", "1", "--out", str(tmp_path / "d")]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "no removable residual blocks" in err
    argv = ["prune", code_shortcut_model, "--depth-blocks", "down", "--out", str(tmp_path / "d")]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "cannot be removed: its shortcut is computed by code" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "prune", "resnet20_cifar", "--depth-blocks", "layer1.11", "--out", "x")
    assert code == 1 and "Did you mean layer1.1" in err


@pytest.mark.slow
def test_triage_command(capsys, tmp_path) -> None:
    args = ["triage", "resnet20_cifar", "--data", "mnist5k", "--resize", "32", "--channels", "3"]
    args += ["--limit", "200", "--val-size", "50", "--unit", "stage", "--steps", "2", "--out", str(tmp_path)]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    rows = json.loads((tmp_path / "triage.json").read_text())["rows"]
    assert [r["unit"] for r in rows] == ["layer1", "layer2", "layer3"]


@pytest.mark.slow
def test_prune_depth_recipe_stage(capsys, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nmodel: {name: resnet20_cifar}\n"
        "data: {name: mnist5k, resize: 32, channels: 3, limit: 64}\n"
        "baseline: {train: {epochs: 1}}\nstages:\n  - prune_depth: {blocks: 2, val_size: 16}\n"
        "outputs: {latency_runs: 2, report: false}\ndeploy: {guard_runs: 1}\n"
    )
    code, _, err = run(capsys, "compress", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["after"]["params"] < results["before"]["params"]


@pytest.mark.slow
def test_compound_recipe_stage_changes_resolution_for_later_stages(capsys, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nmodel: {name: resnet20_cifar}\n"
        "data: {name: mnist5k, resize: 32, channels: 3, limit: 64}\n"
        "baseline: {train: {epochs: 1}}\nstages:\n  - compound: {macs: 0.5, val_size: 16}\n"
        "  - finetune: {epochs: 1}\n"
        "outputs: {latency_runs: 2, report: false}\ndeploy: {guard_runs: 1}\n"
    )
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "compress", str(recipe), "--out", str(run_dir))
    assert code == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    stage = json.loads((run_dir / "01_compound" / "stage.json").read_text())
    height, width = stage["info"]["resolution"]
    assert height == width < 32 and stage["info"]["macs"] <= 0.51
    finetuned = json.loads((run_dir / "02_finetune" / "model" / "netsculpt.json").read_text())
    assert finetuned["extra"]["input_shape"] == [1, 3, height, width]  # the later stage ran at the new size
    assert results["after"]["macs"] <= 0.51 * results["before"]["macs"]
    (run_dir / "02_finetune" / "DONE").unlink()  # resume: the compound stage is loaded, not rerun
    code, _, err = run(capsys, "compress", str(recipe), "--out", str(run_dir))
    assert code == 0, err
    again = json.loads((run_dir / "02_finetune" / "model" / "netsculpt.json").read_text())
    assert again["extra"]["input_shape"] == [1, 3, height, width]
    assert (
        json.loads((run_dir / "results.json").read_text())["after"]["accuracy"]
        == results["after"]["accuracy"]
    )


@pytest.mark.slow
def test_prune_depth_stage_unreachable_target_reports_the_closest(capsys, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nmodel: {name: resnet20_cifar}\n"
        "data: {name: mnist5k, resize: 32, channels: 3, limit: 200}\n"
        "baseline: {train: {epochs: 1}}\nstages:\n  - prune_depth: {target: {macs: 0.01}, val_size: 40}\n"
        "outputs: {latency_runs: 2, report: false}\n"
    )
    code, _, err = run(capsys, "compress", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 1 and "closest achievable is 0.017" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--method", "sensitivity", "--ratios", "0.5", "--target-macs", "0.5", "--val-size", "32"],
        ["triage", "--val-size", "32", "--steps", "1"],
        ["prune", "--depth-blocks", "2"],
    ],
    ids=["search", "triage", "prune-depth"],
)  # fmt: skip
def test_data_the_model_cannot_take_is_one_line_error(capsys, tmp_path, argv) -> None:
    """A saved 3-channel model given 1-channel digits: refused before any scoring with what to change, as
    train / prune / distill already do, not a convolution's traceback."""
    base = tmp_path / "base"
    ns.save(ns.create_model("resnet20_cifar", num_classes=10), base, extra={"input_shape": [1, 3, 32, 32]})
    data = ["--data", "mnist5k", "--limit", "600", "--out", str(tmp_path / "o")]
    code, _, err = run(capsys, argv[0], str(base), *argv[1:], *data)
    assert code == 1 and "the model cannot take the data's images of shape (1, 28, 28)" in err
    assert "--resize / --channels" in err and "Traceback" not in err


def test_prune_depth_blocks_on_a_small_split_holds_out_a_share_of_it(capsys, tmp_path) -> None:
    """``--limit 400`` used to fail "must have between 1 and 399 samples, got 500" with no way to change
    it: the default is now a fifth of a small split, and ``--val-size`` sets it."""
    argv = ["prune", "resnet20_cifar", "--depth-blocks", "2", "--depth-criterion", "sensitivity"]
    argv += ["--data", "mnist5k", "--resize", "32", "--channels", "3", "--limit", "400"]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "d"))
    assert code == 0, err
    assert len(ns.load(tmp_path / "d").netsculpt_spec["edits"][0]["blocks"]) == 2
    code, _, err = run(capsys, *argv, "--val-size", "30", "--out", str(tmp_path / "e"))
    assert code == 0, err
    code, _, err = run(capsys, *argv, "--val-size", "400", "--out", str(tmp_path / "f"))
    assert code == 1 and "between 1 and 399 samples, got 400" in err


def test_val_size_without_depth_blocks_and_data_is_refused_not_ignored(capsys, tmp_path) -> None:
    code, _, err = run(
        capsys, "prune", "lenet5", "--ratio", "0.5", "--val-size", "30", "--out", str(tmp_path)
    )
    assert code == 1 and "--val-size holds out images to score blocks" in err
