"""``search --method nao``: within budget, never worse than uniform, resumable round by round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.cli import main
from netsculpt.errors import ConfigError
from netsculpt.search import NAOConfig, search_widths
from tests.search.test_resume import Killed, _kill_at

CONFIG = {
    "init_size": 6,
    "rounds": 3,
    "top": 3,
    "elite": 2,
    "eval_batches": 1,
    "full_batches": 2,
    "nao_epochs": 150,
}


def test_nao_meets_the_budget_and_beats_or_equals_uniform(tiny, tmp_path: Path) -> None:
    result = search_widths(
        tiny.model,
        tiny.example,
        "nao",
        "macs=0.5",
        tiny.train,
        tiny.val,
        NAOConfig(**CONFIG),
        out_dir=tmp_path,
    )
    assert result.plan.meta["predicted"]["macs"] <= 0.5
    rounds = result.history["rounds"]
    assert rounds[0]["round"] == 0 and len(rounds) >= 2
    assert any(r["new"] for r in rounds[1:])  # the moved embeddings decoded to new widths
    bests = [r["best"] for r in rounds]
    assert bests == sorted(bests, reverse=True)  # the best known value never gets worse
    uniform = result.history["uniform"]["loss"]
    assert result.plan.meta["estimate"]["loss"] <= uniform  # uniform is in the first round
    meta = json.loads((tmp_path / "nao_model.json").read_text())
    assert meta["groups"] == [["conv1", 8], ["conv2", 16], ["conv3", 16]]
    assert (tmp_path / "nao_model.safetensors").is_file()


def test_killed_nao_resumes_exactly(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "nao", "macs=0.5", tiny.train, tiny.val, NAOConfig(**CONFIG))
    reference = search_widths(*args)
    with pytest.raises(Killed):
        search_widths(*args, out_dir=tmp_path, on_step=_kill_at("round", 1))
    resumed = search_widths(*args, out_dir=tmp_path, resume=True)
    assert resumed.plan.keep == reference.plan.keep
    strip = [{k: v for k, v in r.items() if k != "evaluated"} for r in reference.history["rounds"]]
    assert [{k: v for k, v in r.items() if k != "evaluated"} for r in resumed.history["rounds"]] == strip
    assert sum(resumed.evaluated.values()) < sum(reference.evaluated.values())


def test_nao_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="step must be a positive"):
        NAOConfig(step=0)
    with pytest.raises(ConfigError, match="trade_off"):
        NAOConfig(trade_off=1.5)
    with pytest.raises(ConfigError, match="finalists"):
        NAOConfig(finalists=-1)


def test_cli_builds_the_nao_config() -> None:
    import argparse

    from netsculpt.cli import search_cmd

    parser = argparse.ArgumentParser()
    search_cmd.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "search",
            "m",
            "--method",
            "nao",
            "--target-macs",
            "0.5",
            "--rounds",
            "3",
            "--top",
            "2",
            "--finalists",
            "3",
            "--out",
            "o",
        ]
    )
    config = search_cmd._config(args)
    assert isinstance(config, NAOConfig) and (config.rounds, config.top, config.finalists) == (3, 2, 3)
    assert main is not None


@pytest.mark.slow
def test_cli_nao_and_screened_genetic_run_end_to_end(tmp_path: Path) -> None:
    import torch

    import netsculpt as ns

    torch.manual_seed(0)
    ns.save(ns.create_model("lenet5"), tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    small = ["--data", "mnist5k", "--limit", "300", "--val-size", "100", "--eval-batch-size", "50",
             "--eval-batches", "1", "--full-batches", "2", "--target-macs", "0.5"]  # fmt: skip
    base = ["--quiet", "search", str(tmp_path / "base"), *small]
    nao = [*base, "--method", "nao", "--rounds", "2", "--init-size", "4", "--top", "2", "--finalists", "1",
           "--final-kd-steps", "2", "--out", str(tmp_path / "nao")]  # fmt: skip
    assert main(nao) == 0
    assert json.loads((tmp_path / "nao" / "plan.json").read_text())["meta"]["search"] == "nao"
    final = json.loads((tmp_path / "nao" / "search.json").read_text())["history"]["final"]["finalists"]
    assert 1 <= len(final) <= 2 and sum(r["winner"] for r in final) == 1
    ga = [*base, "--method", "genetic", "--predictor", "gcn", "--predictor-min", "4", "--pop-size", "4",
          "--generations", "2", "--screen-pool", "3", "--screen-trust", "-1", "--screen-trust-rounds", "2",
          "--out", str(tmp_path / "ga")]  # fmt: skip
    assert main(ga) == 0
    assert json.loads((tmp_path / "ga" / "predictor.json").read_text())["kind"] == "gcn"
    config = json.loads((tmp_path / "ga" / "search_state.json").read_text())["fingerprint"]["config"]
    assert (config["screen_pool"], config["screen_trust"], config["screen_trust_rounds"]) == (3, -1, 2)
