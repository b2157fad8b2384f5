"""`netsculpt bench`: models on the command line (latency only), a run folder (Pareto plots, report page)."""

from __future__ import annotations

import json
import re

import pytest

from netsculpt.cli import main
from tests.runtimes._run import TINY, tiny_run

TINY_NO_INT8 = TINY.replace("  - quantize: {calib_batches: 2}\n", "").replace("report: true", "report: false")

pytestmark = pytest.mark.runtimes  # own pytest process in `make test` (see Makefile)

RUNTIMES = "torch,onnxruntime,openvino"  # torch.compile is tested in tests/runtimes (it compiles for seconds)


def bench(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", "bench", *argv, "--runtimes", RUNTIMES, "--threads", "1", "--runs", "3"])
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_models_prints_a_table_and_writes_latency_plots(capsys, tmp_path) -> None:
    code, out, err = bench(capsys, "lenet5", "--batch", "1,2", "--out", str(tmp_path))
    assert code == 0, err
    for name in ("torch", "onnxru", "openvi"):
        assert name in out
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = data["rows"]
    assert {(r["runtime"], r["batch"]) for r in rows} == {(r, b) for r in RUNTIMES.split(",") for b in (1, 2)}
    assert all(r["latency_ms"] > 0 and r["accuracy"] is None for r in rows)  # no data: latency only
    for batch in (1, 2):
        assert (tmp_path / "bench" / f"latency_b{batch}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_bad_lists(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "lenet5", "--threads", "0"])
    assert main(["--quiet", "bench", "lenet5", "--runtimes", "tensorrt"]) == 1
    assert "choose one of torch, compile" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_run_dir_times_every_model_and_writes_the_runtimes_page(capsys, tmp_path) -> None:
    run = tiny_run(tmp_path / "run")
    code, _out, err = bench(capsys, str(run), "--batch", "1")
    assert code == 0, err
    rows = json.loads((run / "bench.json").read_text())["rows"]
    by = {(r["model"], r["runtime"]): r for r in rows}
    assert {m for m, _ in by} == {"00_baseline", "01_prune", "02_quantize"}
    for model in ("00_baseline", "01_prune"):
        for runtime in RUNTIMES.split(","):
            assert by[model, runtime]["latency_ms"] > 0 and 0 <= by[model, runtime]["accuracy"] <= 1
    int8_eager = by["02_quantize", "torch"]
    assert int8_eager["latency_ms"] is None and "runs on onnxruntime only" in int8_eager["error"]
    assert by["02_quantize", "onnxruntime"]["latency_ms"] > 0
    for runtime in RUNTIMES.split(","):
        assert (run / "bench" / f"pareto_{runtime}.png").is_file()
    page = (run / "runtimes.html").read_text()
    assert len(re.findall(r"<img ", page)) == 3 and page.count("<tr>") == 1 + len(rows)
    assert "runs on onnxruntime only" in page
    assert 'href="runtimes.html"' in (run / "report.html").read_text()


def test_bench_run_dir_loads_models_of_your_own_builder_with_trust_builder(tmp_path) -> None:
    """A run of a model from your own builder: bench RUN_DIR --trust-builder passes it on to ns.load."""
    import netsculpt as ns
    from netsculpt.cli.bench_cmd import run_models
    from netsculpt.errors import NetsculptError
    from tests.test_io import make_own_net

    run = tiny_run(tmp_path / "run", TINY_NO_INT8)
    own = tmp_path / "own"  # a stage model saved from a user builder, in place of the zoo model
    ns.save(make_own_net(), own, builder="tests.test_io:make_own_net", extra={"input_shape": [1, 3, 8, 8]})
    target = run / "00_baseline" / "model"
    for f in target.iterdir():
        f.unlink()
    for f in own.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    with pytest.raises(NetsculptError, match=r"--trust-builder tests\.test_io:make_own_net"):
        run_models(run)
    names = [name for name, model, *_ in run_models(run, "tests.test_io:make_own_net")]
    assert names == ["00_baseline", "01_prune"]
