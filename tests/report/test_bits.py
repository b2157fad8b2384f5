"""Mixed-bit clustering: the report lists bits per layer beside the layer widths."""

from __future__ import annotations

import copy

from netsculpt.report.pages import widths_section
from netsculpt.report.run import load_run


def test_bits_per_layer_are_shown_beside_widths(make_run, recipe_results) -> None:
    results = copy.deepcopy(recipe_results)
    bits = {"conv1": 6, "conv2": 3, "fc1": 2, "fc2": 5}
    results["stages"].append(
        {"index": 3, "kind": "cluster", "dir": "03_cluster", "seconds": 5.0,
         "settings": {"kind": "cluster", "bits": "auto", "budget_bytes": 50_000},
         "metrics": results["after"], "info": {"layer_bits": bits, "bytes": 48_000}}
    )  # fmt: skip
    run = load_run(make_run("mixed", results))
    assert run.stages[-1].bits == bits
    html = widths_section(run)
    assert "Bits per weight index" in html
    for name, b in bits.items():
        assert name in html
        assert f">{b}<" in html
    plain = load_run(make_run("plain", recipe_results))
    assert "Bits per weight index" not in widths_section(plain)
