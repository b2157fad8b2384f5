"""Rerunning a run folder with an edited recipe: keep what the edit does not touch, refuse the rest.

A folder remembers the recipe that made it (``recipe.yaml``; ``--set`` overrides appended as a comment).
Refusing every edit protected finished work but also locked a folder whose first run failed on a typo
before anything was done, and forced ``--force`` (every stage redone) on a user who only changed the last
stage. Now: a folder with no work in it takes the new recipe; an edit of the run's name, of
``compare_random``, of whether a report / maps are written or of the latency guard's verdict
(``deploy.fail_if_slower``, ``deploy.slower_margin``) keeps every finished stage; an edit that
leaves everything else outside ``stages`` as it was and changes stage k keeps the finished stages before
k and redoes k onwards; any other edit of a folder with work in it is refused, naming what differs.
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
#: fields no stage's output depends on: changing them keeps every finished stage (turning
#: ``compare_random`` on runs the random-criterion control beside them; the report is rewritten; the
#: latency guard is re-checked against the kept stages' recorded timings)
SAFE_FIELDS = (
    "name",
    "compare_random",
    "outputs.report",
    "outputs.explain",
    "deploy.fail_if_slower",
    "deploy.slower_margin",
)


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
    old = _stored_recipe(stored)
    fields = _changed_fields(old.model_dump(), recipe.model_dump())
    if fields:
        raise ConfigError(
            f"{run_dir} was made by a different recipe ({', '.join(fields)} "
            f"{'differs' if len(fields) == 1 else 'differ'}, which every stage depends on); to continue it "
            "rerun with the same recipe, or choose a new --out (or pass --force to start this folder's "
            "stages over)"
        )
    first = _first_stage_change(old, recipe)
    if first is None:  # the same stages (the recipe written differently, or only SAFE_FIELDS changed)
        return
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
        valid = _valid_prefix(text, str(stored), overrides)
        if valid is not None:
            return valid
        raise ConfigError(
            f"{stored} no longer reads as a recipe, so netsculpt cannot tell what the new one changes; "
            "choose a new --out (or pass --force to start this folder's stages over)"
        ) from None


def _valid_prefix(text: str, source: str, overrides: list[str]) -> Any:
    """The stored recipe cut after its last stage that still reads, or None when more than its stages
    fails. A recipe this netsculpt refuses at a stage (a check now made when the recipe is read, which
    an older run passed and failed on later) still tells which stages before it are kept: every stage
    from the refused one on is redone."""
    import yaml

    from netsculpt.pipeline.recipe import parse_recipe

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    stages = data.get("stages") if isinstance(data, dict) else None
    for keep in range(len(stages) - 1 if isinstance(stages, list) else -1, -1, -1):
        try:  # the overrides may name a stage that was cut: those that do not apply are dropped
            cut = yaml.safe_dump({**data, "stages": stages[:keep]}, sort_keys=False)
            return parse_recipe(cut, source=source, overrides=_overrides_within(overrides, keep))
        except NetsculptError:
            continue
    return None


def _overrides_within(overrides: list[str], stages: int) -> list[str]:
    """``overrides`` without those that set a stage at or after index ``stages``."""
    kept = []
    for item in overrides:
        match = re.match(r"stages\.(\d+)\b", item)
        if match is None or int(match.group(1)) < stages:
            kept.append(item)
    return kept


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted names of the fields outside ``stages`` that differ (sections compared field by field),
    leaving out :data:`SAFE_FIELDS`."""
    changed = []
    for key in sorted((set(old) | set(new)) - {"stages"}):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changed.append(key)
    return [name for name in changed if name not in SAFE_FIELDS]


def _first_stage_change(old: Any, new: Any) -> int | None:
    """Index in the run's plan (k >= 1: stage k) of the first stage that differs, or None."""
    old_stages, new_stages = old.model_dump()["stages"], new.model_dump()["stages"]
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
