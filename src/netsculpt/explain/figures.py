"""Figures of an explanation (matplotlib object API, Agg; no pyplot state), written as PNG atomically.

``gradcam.png`` / ``chip.png``: one row per test image; the image, then each model's map per layer over
it (and CHIP's refined map). ``channels.png``: per layer, the CHIP independence of every channel and
the learnt class importance, removed channels in red. ``activations.png``: the first image's feature
maps of each layer, kept and removed channels apart.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from netsculpt.explain.gradcam import normalise
from netsculpt.explain.job import Explanation
from netsculpt.fileio import atomic_write

KEPT, REMOVED = "#2f6db5", "#d1495b"
MAX_CHANNELS = 32  # activation thumbnails per layer
DPI = 110


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def write_png(fig: Figure, path: Path) -> Path:
    data = png_bytes(fig)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _gray(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> an array imshow can draw: min-max scaled gray, or RGB for 3 channels."""
    x = image.detach().double()
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return x.permute(1, 2, 0).numpy() if x.shape[0] == 3 else x.mean(0).numpy()


def _overlay(ax, image: torch.Tensor, heat: torch.Tensor | None, title: str = "") -> None:
    ax.imshow(_gray(image), cmap="gray", interpolation="nearest")
    if heat is not None:
        ax.imshow(heat.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def maps_figure(exp: Explanation, method: str) -> Figure:
    """Rows: images; columns: the image, then (model, layer) maps, plus each model's refined CHIP map."""
    cols: list[tuple[str, list[torch.Tensor] | torch.Tensor]] = []
    for mm in exp.models:
        for layer in exp.layers:
            cols.append((f"{mm.name}\n{layer}", normalise(getattr(mm, method)[layer])))
        if method == "chip" and mm.refined is not None:
            cols.append((f"{mm.name}\nrefined", mm.refined))
    n = exp.images.shape[0]
    fig = Figure(figsize=(1.25 * (len(cols) + 1), 1.3 * n + 0.4), dpi=DPI)
    axes = fig.subplots(n, len(cols) + 1, squeeze=False)
    for i in range(n):
        preds = " / ".join(str(int(mm.predicted[i])) for mm in exp.models)
        _overlay(axes[i, 0], exp.images[i], None)
        axes[i, 0].set_ylabel(f"label {int(exp.labels[i])}\npred {preds}", fontsize=7)
        for j, (title, maps) in enumerate(cols, start=1):
            _overlay(axes[i, j], exp.images[i], maps[i], title if i == 0 else "")
    name = {"gradcam": "Grad-CAM", "chip": "CHIP"}[method]
    fig.suptitle(f"{name} maps for the class of each image (columns: model, layer)", fontsize=8)
    fig.tight_layout()
    return fig


def _kept(exp: Explanation, layer: str, width: int) -> np.ndarray:
    k = exp.kept.get(layer)
    return np.ones(width, dtype=bool) if k is None else k.numpy()


def channels_figure(exp: Explanation) -> Figure:
    """Per layer: the baseline's CHIP independence per channel and its class importance, kept vs removed."""
    base = exp.models[0]
    fig = Figure(figsize=(10, 2.6 * len(exp.layers)), dpi=DPI)
    axes = fig.subplots(len(exp.layers), 2, squeeze=False)
    for row, layer in enumerate(exp.layers):
        indep = base.independence[layer].numpy()
        kept = _kept(exp, layer, indep.shape[0])
        ax = axes[row, 0]
        ax.bar(np.arange(indep.shape[0]), indep, color=np.where(kept, KEPT, REMOVED), width=0.9)
        ax.set_title(f"{layer}: CHIP channel independence ({int(kept.sum())}/{kept.size} kept)", fontsize=8)
        ax.set_xlabel("channel", fontsize=7)
        ax.tick_params(labelsize=6)
        imp = base.importance[layer]
        classes = sorted(imp)
        mat = np.stack([imp[c] for c in classes])
        ax = axes[row, 1]
        ax.imshow(mat, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=6)
        ax.set_title(f"{layer}: learnt class importance (rows: class)", fontsize=8)
        ax.set_xlabel("channel (red tick: removed)", fontsize=7)
        ax.tick_params(labelsize=6)
        for c in np.nonzero(~kept)[0]:
            ax.plot([c], [len(classes) - 0.35], marker="|", color=REMOVED, markersize=6, clip_on=False)
    fig.tight_layout()
    return fig


def activations_figure(exp: Explanation) -> Figure:
    """The first test image's feature maps per layer (baseline), most independent first; red = removed."""
    base = exp.models[0]
    rows = []
    for layer in exp.layers:
        acts = base.activations[layer]
        order = torch.argsort(base.independence[layer], descending=True)[:MAX_CHANNELS]
        rows.append((layer, acts, order, _kept(exp, layer, acts.shape[0])))
    ncols = min(16, max(len(o) for _, _, o, _ in rows))
    nrows = sum((len(o) + ncols - 1) // ncols for _, _, o, _ in rows)
    fig = Figure(figsize=(0.75 * ncols, 0.85 * nrows + 0.5), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    r = 0
    for layer, acts, order, kept in rows:
        for k, ch in enumerate(order.tolist()):
            ax = axes[r + k // ncols, k % ncols]
            ax.set_axis_on()
            ax.imshow(acts[ch].numpy(), cmap="magma", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(KEPT if kept[ch] else REMOVED)
                spine.set_linewidth(2)
            ax.set_title(f"{layer}:{ch}" if k == 0 else str(ch), fontsize=5)
        r += (len(order) + ncols - 1) // ncols
    fig.suptitle("feature maps of the first image (blue frame: kept, red: removed)", fontsize=8)
    fig.tight_layout()
    return fig


def write_figures(exp: Explanation, out: Path) -> dict[str, str]:
    """Write every figure into ``out``; returns {figure: file name}."""
    figures = {
        "gradcam": maps_figure(exp, "gradcam"),
        "chip": maps_figure(exp, "chip"),
        "channels": channels_figure(exp),
        "activations": activations_figure(exp),
    }
    names = {}
    for key, fig in figures.items():
        names[key] = f"{key}.png"
        write_png(fig, out / names[key])
    return names
