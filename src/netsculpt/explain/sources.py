"""What ``netsculpt explain`` looks at: a run directory (baseline + final model, the run's data and the
channels its prune stages kept), or one model with an optional ``--baseline`` and its ``plan.json``.

Kept channels are traced back through every prune stage: stage i's plan is read against stage i-1's
model, so a layer pruned twice still maps each surviving channel to the baseline's channel.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, PruningError
from netsculpt.explain.channels import kept_channels
from netsculpt.surgery.match import check_plan_fits
from netsculpt.surgery.plan import PrunePlan


@dataclass
class Source:
    models: dict[str, nn.Module]
    input_shape: tuple[int, ...]
    data: dict[str, Any] = field(default_factory=dict)  # make_loaders options from a recipe
    kept: dict[str, torch.Tensor | None] = field(default_factory=dict)
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "recipe.yaml").is_file() and any(p.glob("00_*/model"))


def _stages(run: Path) -> list[Path]:
    """Finished stage folders in order (``NN_kind`` with a DONE marker)."""
    return sorted(d for d in run.iterdir() if d.is_dir() and d.name[:2].isdigit() and (d / "DONE").is_file())


def _shape(model_dir: Path) -> tuple[int, ...] | None:
    from netsculpt.io import read_spec

    shape = read_spec(model_dir).get("extra", {}).get("input_shape")
    return tuple(int(s) for s in shape) if shape else None


def layer_widths(model: nn.Module, layers: list[str], x: torch.Tensor) -> dict[str, int | None]:
    """Channels (dim 1) of each layer's output on ``x``; None for a layer the model does not have."""
    from netsculpt.explain.capture import capture, restored

    have = dict(model.named_modules())
    present = [layer for layer in layers if layer in have]
    with restored(model), torch.no_grad(), capture(model, present) as store:
        model(x)
    return {
        layer: int(store[layer].shape[1]) if layer in store and store[layer].dim() > 1 else None
        for layer in layers
    }


def trace_kept(
    chain: list[tuple[nn.Module, PrunePlan | None]], layers: list[str], shape: tuple[int, ...]
) -> dict:
    """``chain``: (model before stage, that stage's plan or None) in order. Per layer: bool over the first
    model's channels, True where the channel survives every plan; None when it cannot be followed."""
    from netsculpt.graph import trace

    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    origin: dict[str, torch.Tensor | None] = {}
    first: dict[str, int | None] = {}
    for model, plan in chain:
        widths = layer_widths(model, layers, x)
        graph = trace(model, x) if plan is not None else None
        if plan is not None and graph is not None:
            check_plan_fits(graph, plan, model)  # a wrong baseline would mark the wrong channels
        for layer in layers:
            width = widths[layer]
            if layer not in origin:
                first[layer] = width
                origin[layer] = torch.arange(width) if width is not None else None
            o = origin[layer]
            if o is None or width is None or o.numel() != width:
                origin[layer] = None  # a layer removed or reshaped by a non-prune edit
                continue
            if plan is not None and graph is not None:
                origin[layer] = o[kept_channels(model, graph, plan, layer, width)]
    out: dict[str, torch.Tensor | None] = {}
    for layer, o in origin.items():
        width = first[layer]
        if o is None or width is None:
            out[layer] = None
            continue
        mask = torch.zeros(width, dtype=torch.bool)
        mask[o] = True
        out[layer] = mask
    return out


def from_run(run: Path, layers_for: Any, trust_builder: str | None = None) -> Source:
    """Baseline = the first stage's model, compressed = the last stage saved as a netsculpt model."""
    from netsculpt.io import is_saved_model, load
    from netsculpt.pipeline.recipe import load_recipe

    stages = [s for s in _stages(run) if is_saved_model(s / "model")]
    if not stages:
        raise ConfigError(
            f"{run} has no finished stage with a saved model yet; run `netsculpt compress` first"
        )
    recipe, _ = load_recipe(run / "recipe.yaml")
    if recipe.task != "classification":  # the maps explain one class score per image
        raise ConfigError(
            f"{run}: netsculpt explain draws maps for classification runs only (task: {recipe.task})"
        )
    d = recipe.data
    data = {"name": d.name, "root": d.root, "resize": d.resize, "channels": d.channels, "options": d.options}
    baseline = load(stages[0] / "model", trust_builder=trust_builder)
    shape = _shape(stages[0] / "model") or (1, 1, 28, 28)
    src = Source({"baseline": baseline}, shape, data, run_dir=run)
    if len(stages) == 1:
        src.notes.append("the run has only its baseline so far: one model explained")
        return src
    final = load(stages[-1] / "model", trust_builder=trust_builder)
    src.models["compressed"] = final
    layers = layers_for(baseline, shape, [final])  # layers the compressed model still has
    chain: list[tuple[nn.Module, PrunePlan | None]] = []
    previous = baseline
    for stage in stages[1:]:
        plan_file = stage / "plan.json"
        plan = PrunePlan.load(plan_file) if plan_file.is_file() else None
        chain.append((previous, plan))
        previous = load(stage / "model", trust_builder=trust_builder)
    chain.append((previous, None))
    src.kept = trace_kept(chain, layers, shape)
    src.notes.append(f"baseline {stages[0].name}, compressed {stages[-1].name}")
    return src


def from_models(
    model: nn.Module,
    shape: tuple[int, ...],
    baseline_dir: str | None,
    model_dir: str | None,
    layers_for: Any,
    trust_builder: str | None = None,
) -> Source:
    """One model; with ``baseline_dir`` the model is the compressed one and kept channels come from the
    ``plan.json`` beside it (written by ``netsculpt prune``)."""
    if baseline_dir is None:
        return Source({"baseline": model}, shape)
    from netsculpt.io import is_saved_model, load

    if not is_saved_model(baseline_dir):
        raise ConfigError(f"--baseline {baseline_dir!r} is not a saved netsculpt model (no netsculpt.json)")
    baseline = load(baseline_dir, trust_builder=trust_builder)
    src = Source({"baseline": baseline, "compressed": model}, shape)
    plan_file = Path(model_dir) / "plan.json" if model_dir else None
    if plan_file is not None and plan_file.is_file():
        plan = PrunePlan.load(plan_file)
        try:
            layers = layers_for(baseline, shape, [model])
            src.kept = trace_kept([(baseline, plan), (model, None)], layers, shape)
        except PruningError as err:
            raise ConfigError(
                f"--baseline {baseline_dir!r} is not the model {plan_file} was made on: {err}. Pass the "
                "baseline that model was pruned from"
            ) from None
    else:
        src.notes.append("no plan.json beside the model: kept/removed channels are not marked")
    return src


def write_numbers(numbers: dict[str, Any], path: Path) -> Path:
    from netsculpt.fileio import write_json

    json.dumps(numbers)  # fail here, before anything is replaced
    return write_json(path, numbers)
