"""The reports open in a real headless Chromium: every chart decodes and the page is not blank."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from netsculpt.report import write_comparison, write_report
from netsculpt.report.html import figure, page
from tests.report._chromium import headless

pytestmark = pytest.mark.slow


def loaded_flags(binary: str, html: Path, profile: Path) -> list[str]:
    """The data-loaded mark the report's own script put on each <img>, read from Chromium's final DOM."""
    done = headless(binary, profile, "--dump-dom", html.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    tags = re.findall(r"<img\b[^>]*>", done.stdout)
    return [m.group(1) if (m := re.search(r'data-loaded="(\d)"', t)) else "unmarked" for t in tags]


def screenshot(binary: str, html: Path, profile: Path, out: Path) -> np.ndarray:
    done = headless(binary, profile, "--window-size=1280,1600", f"--screenshot={out}", html.as_uri())
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    return imread(out)[..., :3]


def test_run_report_renders_with_every_image(chromium, make_run, recipe_results, tmp_path) -> None:
    path = write_report(make_run("recipe", recipe_results))
    assert loaded_flags(chromium, path, tmp_path / "p1") == ["1"] * 4  # 3 trade-off plots + layer widths
    pixels = screenshot(chromium, path, tmp_path / "p2", tmp_path / "report.png")
    assert pixels.shape[:2] == (1600, 1280)
    ink = (pixels < 0.9).any(axis=2).mean()  # share of pixels that are not (near) white
    # Text, tables and charts cover a good part of the first screen; a blank or failed page has none.
    assert 0.03 < ink < 0.6
    accent = np.abs(pixels - np.array([0x2F, 0x6D, 0xB5]) / 255).max(axis=2) < 0.08  # the report's blue
    assert accent.sum() > 1000  # the header rule and the chart points and bars are drawn in it


def test_comparison_report_renders(chromium, make_run, compress_results, recipe_results, tmp_path) -> None:
    runs = [make_run("job", compress_results), make_run("recipe", recipe_results)]
    path = write_comparison(runs, tmp_path / "cmp")
    assert loaded_flags(chromium, path, tmp_path / "p1") == ["1"] * 3


def test_a_broken_image_is_marked_as_failed(chromium, tmp_path) -> None:
    # The control for the checks above: a truncated PNG must come out as data-loaded="0".
    broken = page("broken", "control", [figure("data:image/png;base64,iVBORw0KGgo=", "broken", "none")])
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    assert loaded_flags(chromium, path, tmp_path / "p") == ["0"]
