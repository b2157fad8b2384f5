"""`netsculpt report`, run in-process the way a user types it."""

from __future__ import annotations

import json

from netsculpt.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_regenerates_one_run(capsys, make_run, compress_results) -> None:
    folder = make_run("lenet", compress_results)
    code, out, _ = run(capsys, "report", str(folder))
    assert code == 0 and out.strip() == f"report: {folder / 'report.html'}"
    assert (folder / "report.html").stat().st_size > 0


def test_report_compares_runs_into_out(capsys, make_run, compress_results, recipe_results, tmp_path) -> None:
    a, b = make_run("a", compress_results), make_run("b", recipe_results)
    code, out, _ = run(capsys, "report", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert code == 0 and (tmp_path / "cmp" / "report.html").is_file()
    assert out.strip() == f"report: {tmp_path / 'cmp' / 'report.html'}"


def test_comparison_without_out_is_a_clear_error(capsys, make_run, compress_results) -> None:
    a, b = make_run("a", compress_results), make_run("b", compress_results)
    code, _, err = run(capsys, "report", str(a), str(b))
    assert code == 1 and "comparing 2 runs needs --out DIR" in err


def test_invalid_results_exit_with_the_field_named(capsys, make_run) -> None:
    folder = make_run("broken", {"version": 1, "before": {"params": 10}})
    code, _, err = run(capsys, "report", str(folder))
    assert code == 1 and "before.macs: Field required" in err


def test_schema_flag_prints_the_json_schema(capsys) -> None:
    code, out, _ = run(capsys, "report", "--schema")
    assert code == 0 and json.loads(out)["properties"]["version"]["minimum"] == 1
