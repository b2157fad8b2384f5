"""The deep-net-triage page: ``triage.html`` beside ``triage.json`` and ``triage.png``.

Criticality per unit (held-out accuracy after the unit is collapsed into one layer and briefly
fine-tuned), most critical first, with the plot embedded so the page is one self-contained file.
"""

from __future__ import annotations

import base64
from pathlib import Path

from netsculpt.fileio import atomic_write
from netsculpt.jsoncheck import read_json_file
from netsculpt.report.html import esc, figure, note, page, section, table


def triage_page(rows: list[dict], plot_uri: str | None) -> str:
    ordered = sorted(rows, key=lambda r: -float(r["drop"]))
    body = [
        [esc(r["unit"]), esc(r["init"]), esc(r["scheme"]), f"{float(r['accuracy']):.2%}",
         f"{float(r['drop']) * 100:+.1f}", f"{int(r['params_removed']):,}"]
        for r in ordered
    ]  # fmt: skip
    base = f"{float(rows[0]['base_accuracy']):.2%}" if rows else "\u2014"
    return page(
        "Deep net triage",
        f"unmodified held-out accuracy {base}",
        [
            section(
                "Criticality",
                note(
                    "Each unit is collapsed into one conv layer and fine-tuned for a fixed budget; the "
                    "larger the drop, the more the network needs that unit."
                ),
                table(["unit", "init", "train", "held-out acc", "drop (pp)", "params removed"], body),
                figure(plot_uri, "triage plot", "accuracy after collapse, per unit"),
            )
        ],
    )


def write_triage_page(directory: Path) -> Path:
    """Render ``directory/triage.json`` (+ ``triage.png`` if present) into ``directory/triage.html``."""
    rows = read_json_file(directory / "triage.json")["rows"]
    png = directory / "triage.png"
    uri = (
        "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        if png.exists()
        else None
    )
    text = triage_page(rows, uri)
    return atomic_write(directory / "triage.html", lambda tmp: tmp.write_text(text, encoding="utf-8"))
