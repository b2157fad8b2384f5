"""`netsculpt explain`: files written (atomically), a run directory's kept channels, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main
from netsculpt.explain.sources import trace_kept

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--data", "mnist5k", "--images", "3", "--calib-images", "40", "--masks", "16"]
RECIPE = """version: 1
name: tiny
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: lenet5_mnist5k}}
stages:
  - prune: {criterion: l1, ratio: 0.5}
  - finetune: {epochs: 1}
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _files(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


def test_explain_a_zoo_model_writes_figures_and_numbers(capsys, tmp_path) -> None:
    out = tmp_path / "maps"
    code, stdout, err = run(capsys, "explain", "lenet5", *FAST, "--layers", "conv1,conv2", "--out", str(out))
    assert code == 0, err
    assert _files(out) == {"explain.json", "gradcam.png", "chip.png", "channels.png", "activations.png"}
    for name in ("gradcam.png", "chip.png", "channels.png", "activations.png"):
        assert (out / name).read_bytes().startswith(PNG)
    data = json.loads((out / "explain.json").read_text())
    assert data["layers"] == ["conv1", "conv2"] and list(data["models"]) == ["baseline"]
    layer = data["models"]["baseline"]["layers"]["conv2"]
    assert len(layer["independence"]) == 50 and len(data["images"]["labels"]) == 3
    assert len(set(data["images"]["labels"])) == 3  # one image per class first
    assert "refined" in data["models"]["baseline"]
    assert "explain:" in stdout


def _fake_run(tmp_path: Path) -> tuple[Path, torch.Tensor]:
    """A run folder as `netsculpt compress` leaves it: baseline, prune (+ plan.json), finetune."""
    torch.manual_seed(0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text(RECIPE)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5, round_to=1)
    small = ns.apply_plan(model, plan, x, graph=graph)
    for i, (kind, m) in enumerate([("baseline", model), ("prune", small), ("finetune", small)]):
        stage = run_dir / f"{i:02d}_{kind}"
        ns.save(m, stage / "model", extra={"input_shape": [1, 1, 28, 28]})
        (stage / "DONE").write_text("ok\n")
    plan.save(run_dir / "01_prune" / "plan.json")
    conv2 = next(
        g for g in graph.groups if any(m.name == "conv2.weight" and m.role == "out" for m in g.members)
    )
    kept = torch.zeros(50, dtype=torch.bool)
    kept[plan.keep[conv2.id]] = True
    return run_dir, kept


def test_explain_a_run_directory_compares_baseline_and_final(capsys, tmp_path) -> None:
    run_dir, kept = _fake_run(tmp_path)
    code, _, err = run(capsys, "explain", str(run_dir), *FAST[2:])
    assert code == 0, err
    out = run_dir / "explain"
    data = json.loads((out / "explain.json").read_text())
    assert list(data["models"]) == ["baseline", "compressed"]
    assert data["layers"] == ["relu1", "relu2"]  # by default after the last two convs' activations
    assert data["kept"]["relu2"] == kept.tolist()  # traced back through prune and finetune
    base = data["models"]["baseline"]["layers"]["relu2"]
    assert base["independence_summary"]["kept"] == 25
    assert len(data["models"]["compressed"]["layers"]["relu2"]["independence"]) == 25
    assert set(data["similarity"]) == {f"{m}:relu{i}" for m in ("gradcam", "chip") for i in (1, 2)} | {
        "refined"
    }
    assert all(-1 <= v <= 1 for v in data["similarity"]["gradcam:relu2"])
    deletion = data["models"]["compressed"]["deletion"]
    assert set(deletion) == set(data["similarity"]) | {"random"}
    assert "CHIP independence kept" in err  # the summary goes to stderr with the progress
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # atomic writes left no temporaries


def test_kept_channels_compose_across_two_prunes() -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    p1, g1 = ns.plan_pruning(model, x, ratio=0.5, round_to=1)
    m1 = ns.apply_plan(model, p1, x, graph=g1)
    p2, g2 = ns.plan_pruning(m1, x, ratio=0.5, round_to=1, criterion="random")
    m2 = ns.apply_plan(m1, p2, x, graph=g2)
    kept = trace_kept([(model, p1), (m1, p2), (m2, None)], ["conv1", "conv2", "relu2"], (1, 1, 28, 28))
    assert torch.equal(kept["relu2"], kept["conv2"])  # an activation shows its conv's channels
    assert int(kept["conv2"].sum()) == m2.conv2.out_channels < 50
    # the survivors' filters are the baseline's filters at exactly those output and input indices
    assert torch.equal(m2.conv2.weight, model.conv2.weight[kept["conv2"]][:, kept["conv1"]])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lenet5", *FAST, "--layers", "conv9", "--out", "X"], "no layer 'conv9'"),
        (["lenet5", *FAST, "--layers", "fc1", "--out", "X"], "not (N, C, H, W)"),
        (["lenet5", *FAST, "--images", "0", "--out", "X"], "--images must be >= 1"),
        (["lenet5", "--images", "2", "--out", "X"], "pass --data NAME"),
        (["lenet5", *FAST], "pass --out DIR"),
        (["lenet5", *FAST, "--class", "12", "--out", "X"], "out of range: the model has 10 classes"),
        (["lenet5", *FAST, "--baseline", "nowhere", "--out", "X"], "not a saved netsculpt model"),
    ],
)
def test_bad_input_gives_a_clear_one_line_error(capsys, tmp_path, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "explain", *argv)
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "X" / "explain.json").exists()


def test_explain_a_pruned_model_against_its_baseline(capsys, tmp_path) -> None:
    torch.manual_seed(0)
    ns.save(ns.create_model("lenet5"), tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    code, _, err = run(capsys, "prune", str(tmp_path / "base"), "--ratio", "0.5", "--round-to", "1",
                       "--out", str(tmp_path / "small"))  # fmt: skip
    assert code == 0, err
    out = tmp_path / "maps"
    argv = [str(tmp_path / "small"), "--baseline", str(tmp_path / "base"), *FAST, "--layers", "relu2"]
    code, _, err = run(capsys, "explain", *argv, "--out", str(out))
    assert code == 0, err
    data = json.loads((out / "explain.json").read_text())
    assert sum(data["kept"]["relu2"]) == 25 and list(data["models"]) == ["baseline", "compressed"]
    plan = json.loads((tmp_path / "small" / "plan.json").read_text())
    assert sorted(i for i, k in enumerate(data["kept"]["relu2"]) if k) in [
        sorted(v) for v in plan["keep"].values()
    ]


def test_a_baseline_the_plan_was_not_made_on_is_refused(capsys, tmp_path) -> None:
    torch.manual_seed(0)
    ns.save(ns.create_model("lenet5"), tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    code, _, err = run(capsys, "prune", str(tmp_path / "base"), "--ratio", "0.5", "--round-to", "1",
                       "--out", str(tmp_path / "small"))  # fmt: skip
    assert code == 0, err
    # the pruned model given as its own baseline: its plan.json was made on the full-width original,
    # so marking kept channels on the pruned widths would mark the wrong ones
    argv = [str(tmp_path / "small"), "--baseline", str(tmp_path / "small"), *FAST, "--layers", "relu2"]
    code, _, err = run(capsys, "explain", *argv, "--out", str(tmp_path / "maps"))
    assert code == 1 and "is not the model" in err and "channels here but" in err
    assert not (tmp_path / "maps" / "explain.json").exists()


def test_explain_on_a_dense_run_says_classification_only(capsys, tmp_path) -> None:
    """A detection run folder: the maps explain a class score per image, which a detector has not."""
    run_dir = tmp_path / "det"
    example = Path(__file__).resolve().parents[2] / "examples" / "detector_digits.yaml"
    (run_dir / "00_baseline").mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(example.read_text())
    ns.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), run_dir / "00_baseline" / "model")
    (run_dir / "00_baseline" / "DONE").write_text("ok\n")
    code, _, err = run(capsys, "explain", str(run_dir))
    assert code != 0 and "classification runs only (task: detection)" in err
