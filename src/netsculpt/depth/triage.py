"""Deep net triage: collapse each block (or stage) into one conv layer and measure what survives.

Each unit is replaced by ``conv k×k (stride of the unit) -> BatchNorm [-> ReLU]`` mapping the unit's
input shape to its output shape, initialised one of three ways (the paper's): ``random``; ``first``
(copied from the unit's first conv where the shapes agree, the rest random); ``distilled`` (the new layer
alone regresses the unit's output on training batches, MSE). It is then fine-tuned for a fixed number of
steps under one scheme: ``layer`` (only the new layer, cross-entropy), ``network`` (everything), or
``network_kd`` (everything, distilled from the unmodified model). The table holds the accuracy on
held-out training data after that fixed budget: the lower it is, the more critical the unit.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.graph import trace
from netsculpt.logits import logits_of
from netsculpt.progress import track
from netsculpt.surgery.depth import set_module

INITS = ("random", "first", "distilled")
SCHEMES = ("layer", "network", "network_kd")


@dataclass(frozen=True)
class TriageConfig:
    unit: str = "block"  # "block" or "stage"
    inits: tuple[str, ...] = ("distilled",)
    schemes: tuple[str, ...] = ("layer",)
    steps: int = 100
    lr: float = 0.01
    kernel: int = 3
    temperature: float = 4.0
    eval_batches: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.unit not in ("block", "stage"):
            raise ConfigError(f"triage unit must be 'block' or 'stage', got {self.unit!r}")
        for name, given, known in (("init", self.inits, INITS), ("train", self.schemes, SCHEMES)):
            bad = [g for g in given if g not in known]
            if bad or not given:
                raise ConfigError(f"triage {name} {bad or given!r}: choose from {', '.join(known)}")
        if self.steps < 0:
            raise ConfigError("triage steps must be >= 0")


@dataclass
class TriageRow:
    unit: str
    init: str
    scheme: str
    accuracy: float
    base_accuracy: float
    params_removed: int

    @property
    def drop(self) -> float:
        return self.base_accuracy - self.accuracy


def units_of(model: nn.Module, example: torch.Tensor, unit: str) -> list[str]:
    """Removable residual blocks, or the stages (parents) holding them, in execution order.

    A parent that also holds layers other than blocks is not a stage: torchvision's MobileNets and
    EfficientNets keep every block in one ``features`` Sequential with the stem and the last conv, and
    collapsing that would replace the whole trunk with one conv."""
    blocks = [u for u in trace(model, example).blocks if u.removable or unit == "stage"]
    if unit == "block":
        return [u.name for u in blocks]
    names = {u.name for u in blocks}
    stages = []
    for stage in dict.fromkeys(u.stage for u in blocks if u.stage):
        children = [f"{stage}.{child}" for child, _ in model.get_submodule(stage).named_children()]
        if all(child in names for child in children):
            stages.append(stage)
    if not stages and blocks:
        raise ConfigError(
            f"{type(model).__name__} has no stage modules: its blocks sit in one container with other "
            "layers (the stem, the last conv), which is not a stage to collapse; use --unit block"
        )
    return stages


def _io(model: nn.Module, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    module = model.get_submodule(name)
    handle = module.register_forward_hook(lambda m, a, o: seen.update(x=a[0], y=o))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    return seen["x"], seen["y"]


def collapsed_layer(unit: nn.Module, x: torch.Tensor, y: torch.Tensor, init: str, kernel: int) -> nn.Module:
    """One conv -> BN -> ReLU with the unit's input/output shapes, initialised by ``init`` (not distilled)."""
    c_in, c_out = x.shape[1], y.shape[1]
    stride = max(1, round(x.shape[-1] / y.shape[-1]))
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    layer = nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())
    if init == "first":
        first = next((m for m in unit.modules() if isinstance(m, nn.Conv2d) and m.groups == 1), None)
        if first is not None:
            w = first.weight.detach()
            o, i = min(c_out, w.shape[0]), min(c_in, w.shape[1])
            k = min(kernel, w.shape[-1])
            off, woff = (kernel - k) // 2, (w.shape[-1] - k) // 2
            with torch.no_grad():
                conv.weight[:o, :i, off : off + k, off : off + k] = w[
                    :o, :i, woff : woff + k, woff : woff + k
                ]
    return layer


def _distil_layer(
    layer: nn.Module, unit: nn.Module, model: nn.Module, name: str, loader: Any, cfg: TriageConfig
) -> None:
    """Fit the new layer alone to the unit's output on training batches (MSE)."""
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer.train()
    for batch in itertools.islice(itertools.cycle(loader), max(cfg.steps, 1)):
        x_in, y_out = _io(model, name, batch[0])
        loss = nn.functional.mse_loss(layer(x_in), y_out)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _fine_tune(
    student: nn.Module, teacher: nn.Module, layer: nn.Module, loader: Any, scheme: str, cfg: TriageConfig
) -> None:
    from netsculpt.train.distill import kd_loss

    params = list(layer.parameters()) if scheme == "layer" else list(student.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
    student.train()
    if scheme == "layer":
        student.eval()
        layer.train()
    for batch in itertools.islice(itertools.cycle(loader), cfg.steps):
        inputs, labels = batch[0], batch[1]
        logits = logits_of(student(inputs))
        loss = nn.functional.cross_entropy(logits, labels)
        if scheme == "network_kd":
            with torch.no_grad():
                soft = logits_of(teacher(inputs))
            loss = 0.1 * loss + 0.9 * kd_loss(logits, soft, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()


def triage(
    model: nn.Module, example: torch.Tensor, train: Any, held_out: Any, config: TriageConfig
) -> list[TriageRow]:
    """One row per (unit, init, scheme): held-out accuracy after collapsing the unit and fine-tuning."""
    from netsculpt.measure.macs import count_params
    from netsculpt.train.evaluate import evaluate

    teacher = copy.deepcopy(model).eval()
    base, _ = evaluate(teacher, held_out, max_batches=config.eval_batches)
    names = units_of(model, example, config.unit)
    if not names:
        raise ConfigError("no residual blocks to triage in this model (print ns.trace(model, x) to see why)")
    probe = next(iter(train))[0][:1]
    rows = []
    combos = list(itertools.product(names, config.inits, config.schemes))
    for name, init, scheme in track(combos, "triage"):
        torch.manual_seed(config.seed)
        student = copy.deepcopy(model).eval()
        unit = student.get_submodule(name)
        x, y = _io(student, name, probe)
        layer = collapsed_layer(unit, x, y, init, config.kernel)
        if init == "distilled":
            _distil_layer(layer, teacher.get_submodule(name), teacher, name, train, config)
        removed = count_params(unit) - count_params(layer)
        set_module(student, name, layer)
        _fine_tune(student, teacher, layer, train, scheme, config)
        acc, _ = evaluate(student, held_out, max_batches=config.eval_batches)
        rows.append(TriageRow(name, init, scheme, acc, base, removed))
    return rows


def write_triage(rows: list[TriageRow], out_dir: Path) -> list[Path]:
    """``triage.json`` (rows), ``triage.png`` (accuracy per unit and init × scheme), ``triage.html``."""
    from netsculpt.fileio import atomic_write, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"rows": [{**asdict(r), "drop": r.drop} for r in rows]}
    paths = [write_json(out_dir / "triage.json", data)]
    paths.append(atomic_write(out_dir / "triage.png", lambda p: plot_triage(rows, p)))
    from netsculpt.report.triage_page import write_triage_page

    paths.append(write_triage_page(out_dir))
    return paths


def plot_triage(rows: list[TriageRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = list(dict.fromkeys(r.unit for r in rows))
    combos = list(dict.fromkeys((r.init, r.scheme) for r in rows))
    width = 0.8 / max(len(combos), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(units) * max(1, len(combos) / 2)), 3.5))
    for j, combo in enumerate(combos):
        acc = {r.unit: r.accuracy for r in rows if (r.init, r.scheme) == combo}
        ax.bar(
            [i + j * width for i in range(len(units))],
            [acc.get(u, 0) for u in units],
            width,
            label=" / ".join(combo),
        )
    if rows:
        ax.axhline(rows[0].base_accuracy, color="k", lw=1, ls="--", label="unmodified")
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(units))], units, rotation=45, ha="right", fontsize=8
    )
    ax.set_ylabel("held-out accuracy after collapse")
    ax.set_title("Deep net triage: lower = more critical unit")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
