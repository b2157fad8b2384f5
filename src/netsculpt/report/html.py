"""HTML building blocks: the page shell (inline CSS, image-load marker script) and escaped tables.

Every text that came from a file (names, settings, the recipe) passes through :func:`esc`; chart
images are ``data:`` URIs, so the page loads nothing from anywhere and opens the same offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9dee4; --band: #f4f6f8; --good: #1d7a43;
        --bad: #b42334; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 56px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 10px; margin-bottom: 10px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub, .note, figcaption { color: var(--muted); font-size: 13px; }
.sub { margin: 0; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top;
         white-space: nowrap; }
td small { font-size: 12px; }
th { background: var(--band); font-weight: 600; }
td.name, th.name { text-align: left; font-weight: 600; }
td.text, th.text { text-align: left; }
td.wrap { text-align: left; white-space: normal; min-width: 110px; }
td.settings { text-align: left; white-space: normal; font-size: 12.5px; color: var(--muted);
              max-width: 520px; }
table.summary td, table.summary th { padding: 8px 16px; font-size: 15px; }
.wide { overflow-x: auto; }
.small { font-size: 12px; color: var(--muted); }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; background: #fff; }
figure img { display: block; width: 100%; height: auto; }
figure.layers { max-width: 900px; }
pre { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
      overflow-x: auto; font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
code { font: 12.5px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
details summary { cursor: pointer; color: var(--accent); }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px; }
.missing { color: var(--muted); font-style: italic; }
"""

# Marks every <img> data-loaded="1" (decoded, non-empty) or "0" (failed): a headless browser's DOM dump
# then shows whether each chart rendered, which the test suite checks.
SCRIPT = """
(function () {
  function mark(img) { img.setAttribute("data-loaded", img.complete && img.naturalWidth > 0 ? "1" : "0"); }
  document.querySelectorAll("img").forEach(function (img) {
    if (img.complete) { mark(img); return; }
    img.addEventListener("load", function () { mark(img); });
    img.addEventListener("error", function () { mark(img); });
  });
})();
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """A complete, self-contained HTML document."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)} \u2014 netsculpt report</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n<main>\n"
        f'<header><h1>{esc(title)}</h1><p class="sub">{subtitle} \u00b7 generated {stamp} by netsculpt'
        f"</p></header>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def section(heading: str, *parts: str, anchor: str | None = None) -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}>\n<h2>{esc(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def note(text: str, cls: str = "note") -> str:
    """A paragraph of already-escaped (or trusted) HTML."""
    return f'<p class="{cls}">{text}</p>'


EMPTY = "\u2014"  # what report.format writes for "not recorded"
Cell = str | tuple[str, str]  # escaped HTML, or (escaped HTML, CSS class)


def _text(value: Cell) -> str:
    return value[0] if isinstance(value, tuple) else value


def table(
    header: Sequence[Cell], rows: Iterable[Sequence[Cell]], cls: str = "", drop_empty: bool = False
) -> str:
    """A table of already-escaped cells; a cell may carry a CSS class as ``(html, cls)``.

    ``drop_empty`` leaves out columns with nothing recorded in any row (all "" or the em dash), so a
    run that did not record, say, per-stage timings shows no column of dashes.
    """
    rows = [list(r) for r in rows]
    if drop_empty and rows:
        keep = [j for j in range(len(header)) if any(_text(r[j]) not in ("", EMPTY) for r in rows)]
        header = [header[j] for j in keep]
        rows = [[r[j] for j in keep] for r in rows]

    def cell(tag: str, value: Cell) -> str:
        text, klass = value if isinstance(value, tuple) else (value, "")
        return f'<{tag} class="{klass}">{text}</{tag}>' if klass else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "\n".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    head_html = f"<thead><tr>{head}</tr></thead>"
    return f'<div class="wide"><table{klass}>\n{head_html}\n<tbody>\n{body}\n</tbody></table></div>'


def figure(uri: str | None, alt: str, caption: str, cls: str = "", missing: str = "") -> str:
    """An embedded chart, or a note saying why there is none."""
    if uri is None:
        return note(esc(missing or f"{alt}: not recorded in results.json"), "missing")
    klass = f' class="{cls}"' if cls else ""
    return f'<figure{klass}><img src="{uri}" alt="{esc(alt)}"><figcaption>{caption}</figcaption></figure>'


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"
