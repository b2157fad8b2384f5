"""docs/migrating.md: every netsculpt block (fenced as ``python run``) runs, in page order, in one
namespace, so the page cannot drift from the API. The other libraries' blocks (plain ``python``) are
there for comparison and are not run; this checks each section has both kinds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from netsculpt.importance import CRITERIA

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"
PEERS = ("Torch-Pruning", "NNI", "NNCF", "coremltools")
FENCE = re.compile(r"^```(python run|python)\n(.*?)^```", flags=re.M | re.S)


def _blocks(text: str) -> list[tuple[str, int, str]]:
    """(info string, line of the block's first code line, code) for every python block."""
    return [(m[1], text.count("\n", 0, m.start(2)), m[2]) for m in FENCE.finditer(text)]


def test_each_peer_has_its_calls_and_netsculpt_s() -> None:
    text = PAGE.read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    for peer in PEERS:
        body = next((s for s in sections if s.startswith(peer)), None)
        assert body is not None, f"no section for {peer}"
        kinds = {info for info, _, _ in _blocks(body)}
        assert kinds == {"python", "python run"}, f"{peer}: {kinds}"
        assert "**Not in netsculpt:**" in body, f"{peer} lists no gaps"
    readme = (ROOT / "README.md").read_text()
    assert "(docs/migrating.md)" in readme


@pytest.mark.slow
def test_every_netsculpt_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the blocks save into out/
    runnable = [(line, code) for info, line, code in _blocks(PAGE.read_text()) if info == "python run"]
    assert len(runnable) >= 10
    torch.manual_seed(0)
    registered = dict(CRITERIA._entries)  # a block registers a criterion: leave the registry as found
    namespace: dict = {"__name__": "docs_migrating"}
    try:
        for line, code in runnable:
            # padded so a traceback points at the page's own line numbers
            exec(compile("\n" * line + code, str(PAGE), "exec"), namespace)
    finally:
        CRITERIA._entries.clear()
        CRITERIA._entries.update(registered)
    # what the page says the blocks did
    assert namespace["pruned"].scale.shape == (1, 8, 1, 1)
    assert namespace["result"].overall == pytest.approx(0.5)
    assert (tmp_path / "out" / "r20-small").is_dir() and (tmp_path / "out" / "ov").is_dir()
    assert namespace["small"].layer1[0].conv1.out_channels == 8
