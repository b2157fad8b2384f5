"""The quantize stage's settings are checked before any work: a `runtime: auto` stage on a training split too
small for its calibration and held-out batches, and `options` a runtime does not take."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe

# digits limited to 50 images per split in batches of 16: 4 training batches, fewer than the 8 the
# quantize stage calibrates on by default, so nothing would be left to score the candidates on
SMALL = """
name: small_auto
model: {name: lenet5, options: {input_size: 16}}
data: {name: digits, resize: 16, limit: 50, batch_size: 16}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - quantize: {runtime: auto%s}
outputs: {latency_runs: 1, report: false}
"""


def test_auto_quantize_without_held_out_batches_is_refused_before_the_baseline(tmp_path) -> None:
    text = SMALL % ""
    with pytest.raises(ConfigError, match=r"stages\.0\.quantize: .*calib_batches=8 .* gives 4 batch\(es\) .*"
                       r"--set stages\.0\.quantize\.calib_batches=2"):  # fmt: skip
        run_recipe(parse_recipe(text), text, tmp_path)
    assert not (tmp_path / "00_baseline").exists()  # refused before any work (it failed after every stage)


def test_quantize_options_on_a_runtime_that_takes_none_are_refused_when_read() -> None:
    for runtime in ("auto", "openvino", "torch"):  # auto had ignored them silently
        match = rf"stages\.0\.quantize: .*options \(method\) .* runtime {runtime}"
        with pytest.raises(ConfigError, match=match):
            parse_recipe(f"stages:\n  - quantize: {{runtime: {runtime}, options: {{method: entropy}}}}\n")
    parse_recipe("stages:\n  - quantize: {runtime: onnxruntime, options: {method: entropy}}\n")


def test_a_detector_part_on_a_classifiers_quantize_stage_is_refused_before_the_baseline(tmp_path) -> None:
    text = (SMALL % ", calib_batches: 2, part: backbone+head").replace("runtime: auto, ", "")
    with pytest.raises(
        ConfigError, match=r"stages\.0 \(quantize\): part: backbone\+head chooses a detector's"
    ):
        run_recipe(parse_recipe(text), text, tmp_path)
    assert not (tmp_path / "00_baseline").exists()  # it would have been ignored after the baseline trained


def test_float_predictors_are_refused_when_read_where_they_cannot_apply(tmp_path) -> None:
    for fields, match in [
        ("runtime: auto, float_predictors: true", r"not runtime auto \(auto compares each runtime"),
        ("runtime: torch, float_predictors: false", r"on onnxruntime or openvino, not runtime torch"),
        ("part: backbone, float_predictors: true", r"part='backbone' leaves the whole head float already"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_recipe(f"stages:\n  - quantize: {{{fields}}}\n")
    parse_recipe("stages:\n  - quantize: {runtime: openvino, float_predictors: false}\n")
    text = (SMALL % ", calib_batches: 2, float_predictors: true").replace("runtime: auto, ", "")
    with pytest.raises(
        ConfigError, match=r"stages\.0 \(quantize\): float_predictors: True chooses a detector"
    ):
        run_recipe(parse_recipe(text), text, tmp_path)  # a classifier: refused before the baseline
    assert not (tmp_path / "00_baseline").exists()


# injected medians (ms): the int8 candidate is 1.5x slower than the float model on its own runtime, as
# the probe's ShuffleNet-v2 / MobileViT int8 graphs were (1.3-2.2x); the float model on eager is slower still
SLOWER_INT8 = {"float": 2.0, "float@onnxruntime": 1.0, "onnxruntime": 1.5}


def _inject_timings(monkeypatch, times: dict[str, float]) -> list[dict]:
    """ONNX Runtime the one candidate (the others cost a minute and are tested elsewhere); every timing is
    read from ``times``. Returns the calls' ``on`` maps: which runtime each float entry was timed on."""
    from netsculpt.weights import int8_select

    calls: list[dict] = []

    def fake(models, example, threads, runs, rounds=3, on=None, errors=None):
        calls.append(dict(on or {}))
        return {name: times[name] for name in models}

    monkeypatch.setattr(int8_select, "INT8_RUNTIMES", ("onnxruntime",))
    monkeypatch.setattr(int8_select, "_latency", fake)
    return calls


def _auto(extra: str = "") -> str:
    return (SMALL % f", calib_batches: 2, select_batches: 1, tolerance_pp: 100{extra}").replace(
        "report: false", "report: true"
    )


def test_auto_keeps_the_float_model_when_no_int8_candidate_is_faster_and_says_so(
    monkeypatch, tmp_path
) -> None:
    """The stage shipped an int8 model its own latency guard measured 1.3-2.2x slower than the float one;
    the float model was never a candidate."""
    from rich.console import Console

    from netsculpt.pipeline.summary import print_summary
    from netsculpt.runtimes.artefacts import load_artefact

    calls = _inject_timings(monkeypatch, SLOWER_INT8)
    text = _auto()
    results = run_recipe(parse_recipe(text), text, tmp_path)
    assert calls[0]["float@onnxruntime"] == "onnxruntime"  # the float model timed on the candidate's runtime
    info = results["stages"][1]["info"]
    decision = info["decision"]
    assert info["int8"] is False and info["runtime"] is None
    assert decision["keep"] == "float" and decision["int8_faster"] is False
    assert (decision["float_runtime"], decision["float_ms"], decision["int8_ms"]) == ("onnxruntime", 1.0, 1.5)
    assert "1.50x SLOWER than the float model on onnxruntime" in decision["reason"]
    stage = tmp_path / "01_quantize"
    assert load_artefact(stage) is None and (stage / "model" / "model.safetensors").is_file()
    assert (stage / "candidates" / "onnxruntime" / "model.int8.onnx").is_file()  # kept for a look
    assert not any(k.endswith("-int8") for k in results["after"].get("latency") or {})
    console = Console(record=True, width=1000)
    print_summary(results, console)
    printed = console.export_text()
    assert f"quantize (runtime auto): int8 NOT FASTER than float: {decision['reason']}" in printed, printed
    assert "kept the float model" in (tmp_path / "report.html").read_text()
    again = run_recipe(parse_recipe(text), text, tmp_path)  # resumed: the saved float model, same numbers
    assert again["after"] == results["after"]


def test_auto_keeps_int8_when_asked_to_though_slower(monkeypatch, tmp_path) -> None:
    _inject_timings(monkeypatch, SLOWER_INT8)
    text = _auto(", if_slower: int8")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    info = results["stages"][1]["info"]
    assert info["int8"] is True and info["runtime"] == "onnxruntime"
    assert info["decision"]["keep"] == "int8" and "as if_slower: int8 asks" in info["decision"]["reason"]
    assert (tmp_path / "01_quantize" / "model.int8.onnx").is_file()
    assert "onnxruntime-int8" in results["after"]["latency"]
    assert "as if_slower: int8 asks" in (tmp_path / "report.html").read_text()


def test_auto_keeps_a_faster_int8_candidate(monkeypatch, tmp_path) -> None:
    _inject_timings(monkeypatch, {"float": 2.0, "float@onnxruntime": 1.0, "onnxruntime": 0.5})
    text = _auto()
    results = run_recipe(parse_recipe(text), text, tmp_path)
    decision = results["stages"][1]["info"]["decision"]
    assert decision["keep"] == "int8" and decision["int8_faster"] is True
    assert "2.00x faster than the float model on onnxruntime" in decision["reason"]
    assert (tmp_path / "01_quantize" / "model.int8.onnx").is_file()


def _inject_scores(monkeypatch, float_score: float, int8_score: float) -> None:
    """Held-out scores read from the arguments: the float model's, and every int8 candidate's (a deployed
    artefact), so the candidate loses ``100 * (float_score - int8_score)`` points."""
    from netsculpt.weights import int8_select

    def fake(task, model, held, several):
        return int8_score if getattr(model, "deployed_runtime", None) else float_score

    monkeypatch.setattr(int8_select, "_score", fake)


def test_auto_keeps_the_float_model_when_no_int8_candidate_is_within_tolerance(monkeypatch, tmp_path) -> None:
    """It stopped the run with an error, while a slower int8 candidate kept the float model; now both keep
    it, recorded and shown the same way."""
    from rich.console import Console

    from netsculpt.pipeline.summary import print_summary
    from netsculpt.runtimes.artefacts import load_artefact

    _inject_timings(monkeypatch, {"float": 2.0, "float@onnxruntime": 1.0, "onnxruntime": 0.5})  # int8 faster
    _inject_scores(monkeypatch, 0.90, 0.80)  # 10 pp lost, tolerance 1 pp
    text = SMALL % ", calib_batches: 2, select_batches: 1, tolerance_pp: 1"
    text = text.replace("report: false", "report: true")
    results = run_recipe(parse_recipe(text), text, tmp_path)
    info = results["stages"][1]["info"]
    decision = info["decision"]
    assert info["int8"] is False and info["runtime"] is None
    assert decision["keep"] == "float" and decision["int8_accurate"] is False
    assert "every int8 candidate lost more than tolerance_pp=1.0" in decision["reason"]
    assert "onnxruntime: 80.00%" in decision["reason"] and "90.00%" in decision["reason"]
    stage = tmp_path / "01_quantize"
    assert load_artefact(stage) is None and (stage / "model" / "model.safetensors").is_file()
    console = Console(record=True, width=1000)
    print_summary(results, console)
    printed = console.export_text()
    assert f"quantize (runtime auto): int8 NOT ACCURATE ENOUGH: {decision['reason']}" in printed, printed
    assert "every int8 candidate lost more than" in (tmp_path / "report.html").read_text()


def test_auto_stops_when_no_int8_candidate_is_within_tolerance_if_asked(monkeypatch, tmp_path) -> None:
    _inject_timings(monkeypatch, {"float": 2.0, "float@onnxruntime": 1.0, "onnxruntime": 0.5})
    _inject_scores(monkeypatch, 0.90, 0.80)
    text = SMALL % ", calib_batches: 2, select_batches: 1, tolerance_pp: 1, if_inaccurate: fail"
    match = r"no int8 runtime kept accuracy within tolerance_pp=1\.0 .*80\.00%"
    with pytest.raises(ConfigError, match=match):
        run_recipe(parse_recipe(text), text, tmp_path)
