"""`netsculpt prune --steps K`: ns.prune_iteratively from the command line, one plan.json of the original."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main
from netsculpt.iterative import TOLERANCE
from netsculpt.measure import count_macs

X = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def lenet(tmp_path: Path) -> Path:
    """A saved LeNet-5, so every prune starts from the same weights (a zoo build is randomly initialised)."""
    torch.manual_seed(0)
    ns.save(ns.create_model("lenet5"), tmp_path / "lenet", extra={"input_shape": [1, 1, 28, 28]})
    return tmp_path / "lenet"


def prune(capsys, model: Path, out: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", "prune", str(model), *argv, "--out", str(out)])
    stdout, err = capsys.readouterr()
    return code, stdout, err


def test_three_rounds_land_on_the_target_and_plan_json_is_of_the_original(capsys, lenet, tmp_path) -> None:
    code, stdout, _ = prune(capsys, lenet, tmp_path / "p", "--steps", "3", "--target-macs", "0.5")
    assert code == 0
    rounds = [line for line in stdout.splitlines() if line.startswith("round ")]
    assert [r.split(":")[0] for r in rounds] == ["round 1/3", "round 2/3", "round 3/3"]
    small = ns.load(tmp_path / "p")
    original = ns.load(lenet)
    fraction = count_macs(small, X[:1])[0] / count_macs(original, X[:1])[0]
    assert abs(fraction - 0.5) <= TOLERANCE * 0.5  # the tolerance one-shot ns.prune(target=) holds
    plan = ns.PrunePlan.load(tmp_path / "p" / "plan.json")
    assert plan.meta["steps"] == 3 and plan.meta["target"] == {"macs": 0.5} and len(plan.meta["rounds"]) == 3
    # no fine-tuning between rounds: the composed plan applied once to the original is the saved model
    once = ns.apply_plan(original, plan, X[:1])
    assert torch.equal(once.eval()(X), small.eval()(X))


def test_one_step_is_the_one_shot_prune(capsys, lenet, tmp_path) -> None:
    # a ratio in rounds plans by widths (ns.prune_iteratively's ratio_rounds), one-shot by ratio; a target
    # in one round is plan_pruning's own call (scaled_plan of the model as it is)
    assert prune(capsys, lenet, tmp_path / "once", "--ratio", "0.3")[0] == 0
    assert prune(capsys, lenet, tmp_path / "step", "--steps", "1", "--ratio", "0.3")[0] == 0
    keep = [json.loads((tmp_path / d / "plan.json").read_text())["keep"] for d in ("once", "step")]
    assert keep[0] == keep[1] and keep[0]
    models = [ns.load(tmp_path / d).eval() for d in ("once", "step")]
    assert torch.equal(models[0](X), models[1](X))


def test_finetune_epochs_train_after_every_round(capsys, lenet, tmp_path) -> None:
    argv = ["--steps", "2", "--ratio", "0.5", "--data", "mnist5k", "--limit", "64"]
    code, stdout, _ = prune(capsys, lenet, tmp_path / "ft", *argv, "--finetune-epochs", "1")
    assert code == 0
    tuned = [line for line in stdout.splitlines() if "fine-tuned" in line]
    assert [line.split(" test")[0] for line in tuned] == [
        f"round {i}/2: fine-tuned 1 epoch(s)," for i in (1, 2)
    ]
    small, plan = ns.load(tmp_path / "ft").eval(), ns.PrunePlan.load(tmp_path / "ft" / "plan.json")
    assert plan.meta["finetune_epochs"] == 1
    masked = ns.apply_plan(ns.load(lenet), plan, X[:1]).eval()  # the same widths, the untrained weights
    assert [p.shape for p in masked.parameters()] == [p.shape for p in small.parameters()]
    assert not torch.allclose(masked(X), small(X))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0", "--ratio", "0.5"], "--steps takes a whole number of rounds >= 1"),
        (["--steps", "2", "--widths", "conv1=4"], "--steps does not go with --widths: exact widths"),
        (["--steps", "2", "--depth-blocks", "1"], "--steps does not go with --depth-blocks"),
        (["--steps", "2", "--target-latency", "0.5"], "use --target-macs / --target-params with --steps"),
        (["--ratio", "0.5", "--data", "mnist5k", "--finetune-epochs", "1"], "between the rounds of --steps"),
        (["--steps", "2", "--ratio", "0.5", "--round-to", "auto"], "pass --round-to hw or N, or give"),
        (["--steps", "2", "--finetune-epochs", "1"], "pass --steps K and --data NAME"),
    ],
)
def test_what_has_no_rounds_is_refused(capsys, lenet, tmp_path, argv: list[str], message: str) -> None:
    code, _, err = prune(capsys, lenet, tmp_path / "x", *argv)
    assert code != 0 and message in err and not (tmp_path / "x").exists()
