"""results.json validation: both real shapes pass, and every kind of mistake names its field."""

from __future__ import annotations

import json

import pytest

from netsculpt.errors import ConfigError
from netsculpt.report import SCHEMA_VERSION, json_schema, load_results, validate_results


def test_compress_job_shape_validates(compress_results) -> None:
    results = validate_results(compress_results)
    assert isinstance(results.stages, dict)
    assert results.stages["prune"].plan is not None
    assert results.stages["prune"].plan.sizes["conv1"] == 20  # LeNet-5's first conv has 20 channels
    assert results.before.params == 431_080  # the zoo's documented LeNet-5 parameter count


def test_recipe_shape_validates_and_keeps_unknown_keys(recipe_results) -> None:
    recipe_results["recipe_sha256"] = "ab" * 32  # written by the runner, not part of the schema
    results = validate_results(recipe_results)
    assert isinstance(results.stages, list) and results.stages[1].info.plan is not None
    assert [p.name for p in results.points] == ["00_baseline", "01_prune", "02_finetune"]
    assert results.model_extra["recipe_sha256"] == "ab" * 32


def test_model_records_say_the_batch_their_counts_are_for(compress_results) -> None:
    compress_results["before"]["batch_size"] = 8  # Metrics.to_dict() writes it beside macs
    assert validate_results(compress_results).before.batch_size == 8
    assert "batch_size" in json.dumps(json_schema())


def test_only_version_is_required() -> None:
    results = validate_results({"version": 1})
    assert results.before is None and results.points == [] and results.recipe is None


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["before"].update(params="many"), "before.params", "valid integer"),
        (lambda d: d["after"].pop("macs"), "after.macs", "Field required"),
        (lambda d: d["stages"]["prune"].update(accuracy=98.0), "stages.prune.accuracy", "less than or equal"),
        (lambda d: d["stages"]["prune"]["plan"].update(keep=[1, 2]), "stages.prune.plan.keep", "dictionary"),
        (lambda d: d["before"]["layers"][1].pop("name"), "before.layers[1].name", "Field required"),
        (lambda d: d.update(points=[{"accuracy": 0.5}]), "points[0].name", "Field required"),
        (lambda d: d.update(pareto=[7]), "pareto[0]", "dictionary"),
        (lambda d: d.update(wall_seconds=-1), "wall_seconds", "greater than or equal to 0"),
        (lambda d: d["before"].update(batch_size=0), "before.batch_size", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_errors_name_the_field(compress_results, mutate, field, words) -> None:
    mutate(compress_results)
    with pytest.raises(ConfigError) as info:
        validate_results(compress_results, source="run/results.json")
    message = str(info.value)
    assert f"  - {field}: " in message and words in message
    assert message.startswith("run/results.json is not a valid netsculpt results file")


def test_stage_list_errors_name_the_index(recipe_results) -> None:
    recipe_results["stages"][2]["metrics"]["size_bytes"] = -5
    with pytest.raises(ConfigError, match=r"stages\[2\]\.metrics\.size_bytes"):
        validate_results(recipe_results)


def test_version_missing_newer_or_not_an_object() -> None:
    with pytest.raises(ConfigError, match="missing field 'version'"):
        validate_results({"before": {}})
    with pytest.raises(ConfigError, match=r"newer netsculpt.*upgrade"):
        validate_results({"version": SCHEMA_VERSION + 1})
    with pytest.raises(ConfigError, match="JSON object at the top level, got list"):
        validate_results([1, 2])


def test_load_results_reports_missing_and_broken_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"no results\.json in"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text('{"version": 1, "before": ')
    with pytest.raises(ConfigError, match=r"not valid JSON: .*line 1"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"version": 1, "wall_seconds": 3.5}))
    assert load_results(tmp_path).wall_seconds == 3.5


def test_json_schema_documents_the_version() -> None:
    schema = json_schema()
    assert schema["properties"]["version"]["maximum"] == SCHEMA_VERSION
    assert schema["required"] == ["version"]
    assert {"recipe", "points", "pareto", "stages", "before", "after"} <= set(schema["properties"])
    json.dumps(schema)  # a plain JSON document, ready to publish


def test_numbers_beyond_int64_are_refused_by_name() -> None:
    """Found by benchmarks/robustness.py: a width of 2**74 passed validation and crashed matplotlib."""
    layer = {"name": "conv1", "type": "Conv2d", "params": 520, "output_shape": [1, 2**74, 24, 24]}
    with pytest.raises(ConfigError, match="output_shape"):
        validate_results({"version": 1, "before": {"params": 10, "layers": [layer]}})
    with pytest.raises(ConfigError, match="params"):
        validate_results({"version": 1, "before": {"params": 2**70}})
