"""Rerunning a run folder with an edited recipe: keep what the edit does not touch, refuse the rest.

A folder remembers the recipe that made it (``recipe.yaml``; ``--set`` overrides appended as a comment).
Refusing every edit protected finished work but also locked a folder whose first run failed on a typo
before anything was done, and forced ``--force`` (every stage redone) on a user who only changed the last
stage. Now: a folder with no work in it takes the new recipe; an edit that leaves the model, data,
baseline and outputs as they were and changes stage k keeps the finished stages before k and redoes k
onwards; any other edit of a folder with work in it is refused, as before.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from netsculpt.errors import ConfigError, NetsculptError

log = logging.getLogger("netsculpt.pipeline")
_STAGE_DIR = re.compile(r"(\d{2})_[a-z0-9_]+")
OVERRIDES_MARK = "# overrides: "


def with_overrides(text: str, overrides: list[str]) -> str:
    """The text a run folder keeps: the recipe file, and the ``--set`` overrides as a last comment."""
    return text + f"\n{OVERRIDES_MARK}{' '.join(overrides)}\n" if overrides else text


def check_recipe_change(run_dir: Path, recipe: Any, text: str, force: bool, random_dir: str) -> None:
    """Allow ``recipe`` to continue ``run_dir`` (clearing the stages it changes) or raise ConfigError."""
    stored = run_dir / "recipe.yaml"
    if force or not stored.is_file() or stored.read_text() == text:
        return
    stages = stage_dirs(run_dir)
    if not any(_has_files(d) for d in stages.values()):
        clear_stages(run_dir, [*stages.values(), run_dir / random_dir])
        log.info("%s held no finished work: it takes the new recipe", run_dir)
        return
    first = _first_change(_stored_recipe(stored), recipe)
    if first is None:  # the same recipe written differently (comments, order, defaults spelt out)
        return
    if first == 0:
        raise ConfigError(
            f"{run_dir} was made by a different recipe (the model, data, baseline or outputs differ); to "
            "continue it rerun with the same recipe, or choose a new --out (or pass --force to start this "
            "folder's stages over)"
        )
    redo = [d for i, d in stages.items() if i >= first]
    clear_stages(run_dir, [*redo, run_dir / random_dir])  # the random-criterion control reruns the stages
    log.info("the recipe changed from stage %d on: stages before it are kept, %d redone", first, len(redo))


def stage_dirs(run_dir: Path) -> dict[int, Path]:
    """The run's stage folders (``NN_kind``) by index; symlinks are never followed."""
    found = {}
    for d in run_dir.iterdir():
        match = _STAGE_DIR.fullmatch(d.name)
        if match and d.is_dir() and not d.is_symlink():
            found[int(match.group(1))] = d
    return found


def _has_files(folder: Path) -> bool:
    return any(p.is_file() for p in folder.rglob("*"))


def _stored_recipe(stored: Path) -> Any:
    from netsculpt.pipeline.recipe import parse_recipe

    text = stored.read_text()
    lines = text.rstrip("\n").splitlines()
    overrides = (
        lines[-1][len(OVERRIDES_MARK) :].split() if lines and lines[-1].startswith(OVERRIDES_MARK) else []
    )
    try:
        return parse_recipe(text, source=str(stored), overrides=overrides)
    except NetsculptError:
        raise ConfigError(
            f"{stored} no longer reads as a recipe, so netsculpt cannot tell what the new one changes; "
            "choose a new --out (or pass --force to start this folder's stages over)"
        ) from None


def _first_change(old: Any, new: Any) -> int | None:
    """Index in the run's plan (0: model, data, baseline or anything else outside ``stages``; k >= 1:
    stage k) of the first difference, or None when the two recipes are the same."""
    old_d, new_d = old.model_dump(), new.model_dump()
    old_stages, new_stages = old_d.pop("stages"), new_d.pop("stages")
    if old_d != new_d:
        return 0
    for i in range(max(len(old_stages), len(new_stages))):
        if i >= len(old_stages) or i >= len(new_stages) or old_stages[i] != new_stages[i]:
            return i + 1
    return None


def clear_stages(run_dir: Path, folders: list[Path]) -> None:
    """Remove stage ``folders`` and the run's summary files, so nothing of them is resumed as if it
    belonged to the new recipe. Markers go first: a run killed halfway through leaves only unfinished
    stages, which the next run redoes."""
    for d in folders:
        (d / "DONE").unlink(missing_ok=True)
    for name in ("results.json", "report.html"):
        (run_dir / name).unlink(missing_ok=True)
    for d in folders:
        if d.is_dir():
            shutil.rmtree(d)
