"""Every reader netsculpt has, fed corrupted and hostile files: a netsculpt error or a load, never a crash.

A bounded share of ``benchmarks/robustness.py`` (which tries thousands of cases and prints the counts).
"""

from __future__ import annotations

import os

import pytest

from tests._fuzz import READERS, run_reader

EXAMPLES = 15


@pytest.mark.slow
@pytest.mark.parametrize("name", list(READERS))
def test_reader_refuses_bad_files_cleanly(name, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a payload that wrote a relative file would write it here
    counts = run_reader(READERS[name], tmp_path / "work", EXAMPLES)
    crashes = {outcome: n for outcome, n in counts.items() if outcome.startswith("crash")}
    assert not crashes, crashes
    assert sum(counts.values()) == EXAMPLES and counts["refused"] > 0
    assert os.listdir(tmp_path) == ["work"]  # nothing written outside the case folders (no PWNED)


def test_every_reader_family_is_registered_from_files_under_400_lines() -> None:
    """The house limit (docs: small readable files); tests/_fuzz.py had grown to 412 lines before the
    dataset readers moved to tests/_fuzz_datasets.py. The nine readers stay registered, in order."""
    from pathlib import Path

    assert list(READERS) == [
        "netsculpt.json",
        "model.safetensors",
        "packed palettes",
        "packed masked context",
        "ONNX",
        "recipe YAML",
        "results.json",
        "IDX (MNIST)",
        "CIFAR pickle",
    ]
    for path in Path(__file__).parent.glob("_fuzz*.py"):
        assert len(path.read_text().splitlines()) < 400, path
