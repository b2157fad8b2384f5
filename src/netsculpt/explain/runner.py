"""Explain a source end to end: pick the images, compute, write figures and ``explain.json``.

Shared by ``netsculpt explain`` and a recipe's ``outputs: {explain: true}`` (run after the last stage,
before the report is written), so both write the same files the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netsculpt.errors import ConfigError
from netsculpt.explain.chip_maps import Perturbation
from netsculpt.explain.job import Explanation, Settings, default_layers, explain
from netsculpt.explain.sources import Source, from_run, write_numbers

FOLDER = "explain"


def take(loader: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` (images, labels) of a loader."""
    xs, ys, seen = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        seen += x.shape[0]
        if seen >= n:
            break
    if not xs:
        raise ConfigError("the dataset yielded no images")
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


def distinct_classes(images: torch.Tensor, labels: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images, one per class first (in order of appearance), then the rest in order: a report
    that shows eight digits shows eight different ones when the data has them."""
    seen: set[int] = set()
    first, rest = [], []
    for i, y in enumerate(labels.tolist()):
        (rest if y in seen else first).append(i)
        seen.add(y)
    order = (first + rest)[:n]
    return images[order], labels[order]


def recipe_loaders(data: dict[str, Any], limit: int | None = None) -> tuple[Any, Any]:
    """Unshuffled-test / seeded-train loaders for a recipe's data section (as :func:`from_run` reads it)."""
    from netsculpt.data import DataSource

    options = data.get("options") or {}
    source = DataSource(
        data["name"], data.get("root"), data.get("resize"), data.get("channels"), limit, options
    )
    return source.loaders(64)


def explain_source(
    src: Source,
    loaders: tuple[Any, Any],
    out: Path,
    *,
    images: int = 8,
    calib_images: int = 320,
    settings: Settings | None = None,
) -> Explanation:
    """Draw ``images`` test images (one per class first), learn from ``calib_images`` training images,
    write the figures and ``explain.json`` into ``out``; returns the explanation."""
    from netsculpt.explain.figures import write_figures

    train, test = loaders
    shown, labels = distinct_classes(*take(test, max(10 * images, 200)), images)
    calib = take(train, calib_images)
    exp = explain(src.models, shown, labels, calib, settings or Settings(), kept=src.kept)
    exp.numbers["notes"] = src.notes
    exp.numbers["figures"] = write_figures(exp, out)
    write_numbers(exp.numbers, out / "explain.json")
    return exp


def explain_run(
    run_dir: str | Path,
    *,
    layers: list[str] | None = None,
    images: int = 8,
    calib_images: int = 320,
    perturbation: Perturbation | None = None,
    trust_builder: str | None = None,
    target: str | int = "label",
    calib_option: str = "calib_images=",
) -> Explanation:
    """Explain a run's baseline and final model into ``RUN_DIR/explain`` (the report reads it there);
    ``target`` is the class explained, as ``--class``; ``calib_option`` names where ``calib_images`` was
    set, for messages (a recipe's ``outputs.explain.calib_images``)."""
    run_dir = Path(run_dir)

    def layers_for(model: Any, shape: tuple[int, ...], others: Any = ()) -> list[str]:
        return layers or default_layers(model, shape, others)

    src = from_run(run_dir, layers_for, trust_builder)
    settings = Settings(layers=layers, target=target, perturbation=perturbation or Perturbation(),
                        calib_option=calib_option)  # fmt: skip
    return explain_source(
        src,
        recipe_loaders(src.data),
        run_dir / FOLDER,
        images=images,
        calib_images=calib_images,
        settings=settings,
    )


def summary_lines(numbers: dict[str, Any]) -> list[str]:
    """One line per layer: independence of kept vs removed channels; map similarity when comparing."""
    lines = []
    base = numbers["models"]["baseline"]["layers"]
    for layer in numbers["layers"]:
        s = base[layer]["independence_summary"]
        if s.get("mean_removed") is not None:
            lines.append(
                f"{layer}: {s['kept']}/{s['channels']} channels kept; CHIP independence kept "
                f"{s['mean_kept']:.4g} vs removed {s['mean_removed']:.4g}"
            )
    for key, value in numbers.get("similarity_mean", {}).items():
        lines.append(f"map similarity baseline vs compressed ({key}): {value:.3f}")
    deletion = numbers["models"]["baseline"].get("deletion", {})
    if deletion:
        best = max((k for k in deletion if k != "random"), key=lambda k: deletion[k], default=None)
        if best is not None:
            lines.append(
                f"deletion test (baseline): hiding the top {numbers.get('deletion_fraction', 0.1):.0%} "
                f"pixels of {best} drops the class probability "
                f"by {deletion[best]:.3f}, random pixels by {deletion['random']:.3f}"
            )
    return lines
