"""Finalists (netsculpt.search.finalists): the best few and uniform, briefly distilled, pick the winner;
on NAO and the genetic search alike, resumable, refused up front without classification training data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.errors import ConfigError
from netsculpt.search import GeneticConfig, NAOConfig, search_widths
from tests.search.test_nao import CONFIG
from tests.search.test_resume import Killed

FINAL = {"finalists": 2, "final_kd_steps": 3}
GA = {"pop_size": 6, "generations": 2, "elite": 2, "eval_batches": 1, "full_batches": 2}


def test_finalists_are_distilled_and_the_best_after_distillation_wins(tiny, monkeypatch) -> None:
    from netsculpt.search import n2n_students

    calls: list[int] = []
    real = n2n_students.distil_and_score

    def counted(student, *args, **kwargs):
        calls.append(sum(p.numel() for p in student.parameters()))
        return real(student, *args, **kwargs)

    monkeypatch.setattr(n2n_students, "distil_and_score", counted)
    config = NAOConfig(**CONFIG, **FINAL)
    result = search_widths(tiny.model, tiny.example, "nao", "macs=0.5", tiny.train, tiny.val, config)
    rows = result.history["final"]["finalists"]
    assert len(rows) == len(calls) and 2 <= len(rows) <= 3  # the 2 best, plus uniform unless among them
    assert sum(r["uniform"] for r in rows) == 1 and sum(r["winner"] for r in rows) == 1
    (winner,) = [r for r in rows if r["winner"]]
    assert winner["distilled"]["loss"] == min(r["distilled"]["loss"] for r in rows)
    assert result.widths == winner["widths"]  # the plan is the winner's, not the best full score's
    assert result.plan.meta["predicted"]["macs"] <= 0.5 * (1 + config.tolerance)


@pytest.mark.parametrize("method", ["nao", "genetic"])
def test_killed_finalist_stage_resumes_without_distilling_twice(
    method, tiny, tmp_path: Path, monkeypatch
) -> None:
    from netsculpt.search import n2n_students

    config = NAOConfig(**CONFIG, **FINAL) if method == "nao" else GeneticConfig(**GA, **FINAL)
    args = (tiny.model, tiny.example, method, "macs=0.5", tiny.train, tiny.val, config)
    reference = search_widths(*args)
    real, calls = n2n_students.distil_and_score, []

    def dies_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(*a, **k)

    monkeypatch.setattr(n2n_students, "distil_and_score", dies_on_second)
    with pytest.raises(Killed):
        search_widths(*args, out_dir=tmp_path)
    saved = json.loads((tmp_path / "search_state.json").read_text())["progress"]["final"]
    assert len(saved) == 1  # the first finalist was saved before the second died
    calls.clear()
    resumed = search_widths(*args, out_dir=tmp_path, resume=True)
    assert len(calls) == len(reference.history["final"]["finalists"]) - 1
    assert resumed.history["final"] == reference.history["final"]
    assert resumed.plan.keep == reference.plan.keep


def test_genetic_search_picks_among_distilled_finalists_too(tiny) -> None:
    config = GeneticConfig(**GA, **FINAL)
    result = search_widths(tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val, config)
    rows = result.history["final"]["finalists"]
    assert sum(r["uniform"] for r in rows) == 1 and 2 <= len(rows) <= 3
    (winner,) = [r for r in rows if r["winner"]]
    assert result.widths == winner["widths"]


def test_finalist_fields_leave_the_fingerprint_while_off() -> None:
    off, on = NAOConfig().fingerprint(), NAOConfig(finalists=3).fingerprint()
    assert "finalists" not in off and "final_kd_steps" not in off  # states saved before them still resume
    assert on["finalists"] == 3 and on["final_kd_steps"] == NAOConfig.final_kd_steps


def test_finalists_need_training_data(tiny) -> None:
    config = NAOConfig(**CONFIG, finalists=2, adapt_bn_batches=0)
    with pytest.raises(ConfigError, match="pass train_loader"):
        search_widths(tiny.model, tiny.example, "nao", "macs=0.5", None, tiny.val, config)
