"""`netsculpt prune --ratio-for NAME=R`: per-layer ratios from the command line, as ``ns.prune(ratios=)``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.cli import main


def prune(capsys, tmp_path: Path, *argv: str) -> tuple[int, dict, str]:
    out = tmp_path / "p"
    code = main(["--quiet", "prune", "lenet5", "--round-to", "1", *argv, "--out", str(out)])
    _, err = capsys.readouterr()
    plan = json.loads((out / "plan.json").read_text()) if code == 0 else {}
    return code, plan, err


def kept(plan: dict) -> dict[str, int]:
    return {gid: len(idx) for gid, idx in plan["keep"].items()}


def test_ratio_for_globs_classes_and_the_rest(capsys, tmp_path: Path) -> None:
    code, plan, _ = prune(capsys, tmp_path, "--ratio-for", "conv*=0.5", "--ratio-for", "Linear=0.2")
    assert code == 0 and kept(plan) == {"conv1": 10, "conv2": 25, "fc1": 400}
    assert plan["meta"]["ratios"] == {"conv*": 0.5, "Linear": 0.2} and plan["meta"]["ratio"] == 0.0
    # a later key wins for the layers it shares; --ratio is what the others lose
    args = ["--ratio", "0.1", "--ratio-for", "conv2=0.8", "--ratio-for", "torch.nn.Conv2d=0.5"]
    code, plan, _ = prune(capsys, tmp_path, *args)
    assert code == 0 and kept(plan) == {"conv1": 10, "conv2": 25, "fc1": 450}
    args = ["--ratio-for", "conv2=0.8", "--ratio-for", "nn.Conv2d=0.5", "--ratio-for", "conv2=0.8"]
    code, plan, _ = prune(capsys, tmp_path, *args)  # given again: it is the last key again
    assert code == 0 and kept(plan) == {"conv1": 10, "conv2": 10}


def test_ignored_takes_torch_nn_class_names(capsys, tmp_path: Path) -> None:
    code, plan, _ = prune(capsys, tmp_path, "--ratio", "0.5", "--ignored", "Conv2d")
    assert code == 0 and kept(plan) == {"fc1": 250}  # a layer's input channels are kept too


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ratio-for", "conv1"], "--ratio-for takes NAME=RATIO"),
        (["--ratio-for", "conv1=1.5"], "ratio must be in [0, 1)"),
        (["--ratio-for", "nn.Linaer=0.5"], "not a torch.nn module class; did you mean Linear?"),
    ],
)
def test_bad_ratio_for_is_a_usage_error(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit):
        prune(capsys, tmp_path, *argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target-macs", "0.5"], "not with --target-macs"),
        (["--widths", "conv1=4"], "not with --widths"),
        (["--depth-blocks", "1"], "not with --depth-blocks"),
        (["--round-to", "auto"], "--ratio-for with --round-to auto is not supported"),
        (["--ratio-for", "stage9.*=0.5"], "the pattern 'stage9.*' matches no module name"),
    ],
)
def test_ratio_for_refuses_what_ratios_refuses(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    code, _, err = prune(capsys, tmp_path, "--ratio-for", "conv1=0.5", *argv)
    assert code != 0 and message in err
