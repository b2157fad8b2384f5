"""The report's "Interpretation maps" section, from ``RUN_DIR/explain/`` (``netsculpt explain RUN_DIR``).

Shows, for the same test images, the Grad-CAM and CHIP maps of the baseline and of the compressed model,
and per layer the numbers behind them: channels kept, CHIP independence of kept vs removed channels,
the share of the baseline's learnt class importance that sat on removed channels, how alike the two
models' maps are, and how much of each map lies on the image's bright part (the stroke, for digits).
Only the fixed figure names are read (never a path taken from the JSON); every text is escaped.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from netsculpt.report.html import esc, figure, note, section, table

FOLDER = "explain"
FIGURES = (
    ("gradcam", "Grad-CAM", "Grad-CAM of each image's class: the image, then each model's map per layer."),
    ("chip", "CHIP maps", "CHIP maps (class importance learnt by perturbing channels) and their refined "
     "combination across layers."),
    ("channels", "channels", "CHIP channel independence per channel and the learnt class importance "
     "(red: channels the compression removed)."),
    ("activations", "feature maps", "Feature maps of the first image, most independent channels first "
     "(blue frame: kept, red: removed)."),
)  # fmt: skip


def _uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _num(value: Any, digits: int = 3) -> str:
    return "\u2014" if value is None else f"{float(value):.{digits}g}"


def _pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.0%}"


def _mean(values: Any) -> float | None:
    vals = [float(v) for v in values] if isinstance(values, list | tuple) else []
    return float(np.mean(vals)) if vals else None


def layer_rows(data: dict[str, Any]) -> list[list[Any]]:
    models = data.get("models", {})
    base = models.get("baseline", {}).get("layers", {})
    comp = models.get("compressed", {}).get("layers", {})
    sim = data.get("similarity_mean", {})
    rows = []
    for layer in data.get("layers", []):
        b = base.get(layer, {})
        s = b.get("independence_summary", {})
        kept = f"{s['kept']}/{s['channels']}" if "kept" in s else "\u2014"
        share = _mean(list(b.get("importance_removed_share", {}).values()))
        mass_b = _mean(b.get("gradcam", {}).get("bright_mass"))
        mass_c = _mean(comp.get(layer, {}).get("gradcam", {}).get("bright_mass"))
        rows.append([
            (esc(layer), "name"), esc(kept), esc(_num(s.get("mean_kept"))), esc(_num(s.get("mean_removed"))),
            esc(_pct(share)),
            esc(_num(sim.get(f"gradcam:{layer}"))), esc(_num(sim.get(f"chip:{layer}"))),
            esc(_pct(mass_b)), esc(_pct(mass_c)),
        ])  # fmt: skip
    return rows


def deletion_table(data: dict[str, Any]) -> str:
    """Class-probability drop when each map's top pixels are hidden, per model, beside random maps."""
    models = {k: v for k, v in data.get("models", {}).items() if isinstance(v, dict) and v.get("deletion")}
    if not models:
        return ""
    keys = list(dict.fromkeys(k for m in models.values() for k in m["deletion"]))
    rows = [[(esc(k), "name"), *(esc(_num(m["deletion"].get(k))) for m in models.values())] for k in keys]
    frac = data.get("deletion_fraction")
    caption = note(
        f"Deletion test: mean drop of the explained class's probability when the "
        f"{esc(_pct(frac))} of pixels a map ranks highest are hidden (set to the image's minimum); "
        "<i>random</i> hides as many random pixels. A faithful map drops it more than random does."
    )
    return caption + table([("map", "name"), *(esc(k) for k in models)], rows)


def explain_section(run_path: Path) -> str:
    """The section, or "" when the run was never explained."""
    folder = run_path / FOLDER
    path = folder / "explain.json"
    if not path.is_file():
        return ""
    from netsculpt.errors import ConfigError
    from netsculpt.jsoncheck import read_json_file

    try:
        data = read_json_file(path, error=ConfigError)
    except ConfigError as exc:
        return section("Interpretation maps", note(esc(f"explain.json unreadable: {exc}"), "missing"))
    if not isinstance(data, dict):
        return section("Interpretation maps", note("explain.json is not an object", "missing"))
    header = [("layer", "name"), "kept", "independence: kept", "removed", "importance removed",
              "similarity: Grad-CAM", "CHIP", "on digit: before", "after"]  # fmt: skip
    intro = note(
        "Maps on the same test images for the baseline and the compressed model "
        f"(<code>netsculpt explain</code>; class explained: {esc(data.get('target', 'label'))}). "
        "<i>Independence</i>: mean CHIP channel independence of the kept and the removed channels; "
        "<i>importance removed</i>: share of the baseline's learnt class importance on removed channels; "
        "<i>similarity</i>: cosine between the two models' maps (1 = same place); <i>on digit</i>: share "
        "of the Grad-CAM map on the image's bright half. CHIP class importance was learnt on training "
        "images by perturbing the network's channels, never on the test split."
    )
    figures = [
        figure(_uri(folder / f"{key}.png"), alt, esc(caption), cls="layers", missing=f"{key}.png not written")
        for key, alt, caption in FIGURES
    ]
    notes = [note(esc(n)) for n in data.get("notes", []) if isinstance(n, str)]
    return section(
        "Interpretation maps",
        intro,
        table(header, layer_rows(data)),
        deletion_table(data),
        *notes,
        *figures,
        anchor="explain",
    )
