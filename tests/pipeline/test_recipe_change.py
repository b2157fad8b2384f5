"""A run folder whose stored recipe this netsculpt refuses at one stage still keeps the stages before it."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe
from netsculpt.pipeline.recipe_change import check_recipe_change

HEAD = "name: r\nmodel: {name: lenet5}\nbaseline: {train: {epochs: 1}}\nstages:\n"


def _folder(tmp_path, stored: str) -> None:
    (tmp_path / "recipe.yaml").write_text(stored)
    for name in ("00_baseline", "01_prune", "02_finetune"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "DONE").write_text("ok\n")


def test_a_stored_recipe_refused_at_a_stage_keeps_the_stages_before_it(tmp_path) -> None:
    """The old run's prune stage has a field this netsculpt refuses (made by an older version, or a check
    now made when the recipe is read): the baseline is kept and the prune stage onwards redone. It was
    "no longer reads as a recipe ... pass --force", which retrained the baseline too."""
    stored = HEAD + "  - prune: {ratio: 0.5, retired_field: 1}\n  - finetune: {epochs: 1}\n"
    _folder(tmp_path, stored + "\n# overrides: stages.1.finetune.epochs=2 seed=0\n")  # as the CLI keeps them
    new = HEAD + "  - prune: {ratio: 0.5}\n  - finetune: {epochs: 1}\n"
    check_recipe_change(tmp_path, parse_recipe(new), new, False, "compare_random")
    assert (tmp_path / "00_baseline" / "DONE").is_file()
    assert not (tmp_path / "01_prune").exists() and not (tmp_path / "02_finetune").exists()


def test_the_kept_prefix_still_guards_the_fields_every_stage_depends_on(tmp_path) -> None:
    _folder(tmp_path, HEAD + "  - prune: {ratio: 0.5, retired_field: 1}\n")
    new = HEAD.replace("lenet5", "resnet20_cifar") + "  - prune: {ratio: 0.5}\n"
    with pytest.raises(ConfigError, match=r"different recipe \(model.name differs"):
        check_recipe_change(tmp_path, parse_recipe(new), new, False, "compare_random")
    assert (tmp_path / "00_baseline" / "DONE").is_file()


def test_a_stored_recipe_refused_outside_its_stages_is_still_refused(tmp_path) -> None:
    _folder(tmp_path, HEAD.replace("name: r", "name: r\nretired_top: 1") + "  - prune: {ratio: 0.5}\n")
    new = HEAD + "  - prune: {ratio: 0.5}\n"
    with pytest.raises(ConfigError, match="no longer reads as a recipe"):
        check_recipe_change(tmp_path, parse_recipe(new), new, False, "compare_random")
