"""Search progress on disk: scored candidates and each method's state, rewritten atomically every step.

A search killed at any moment leaves the last complete state file (``atomic_write`` renames a finished
temporary file into place), and ``resume=True`` continues from it: candidates already scored are read
from the cache instead of re-evaluated. The file is JSON — no pickle — and records a fingerprint of
everything that decides the results (method, settings, targets, the model's groups and weights); resuming
under a different fingerprint is refused rather than silently mixing two searches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import write_json
from netsculpt.search.evaluator import Evaluation

STATE_FILE = "search_state.json"
STATE_VERSION = 1
FINISHED = "finished"  # progress key: the finished search's result (SearchResult.to_dict() and its files)


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of every parameter and buffer: a state saved for other weights is not resumed."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class ScoreCache:
    """Evaluations by level ("cheap" / "full") and widths key, JSON-ready."""

    def __init__(self, data: dict[str, dict[str, list[float]]] | None = None) -> None:
        self.levels: dict[str, dict[str, Evaluation]] = {"cheap": {}, "full": {}}
        for level, entries in (data or {}).items():
            self.levels[level] = {k: Evaluation.from_list(v) for k, v in entries.items()}

    def get(self, level: str, key: str) -> Evaluation | None:
        return self.levels[level].get(key)

    def put(self, level: str, key: str, value: Evaluation) -> None:
        self.levels[level][key] = value

    def best(self, key: str) -> Evaluation | None:
        """The fullest evaluation of ``key`` there is."""
        return self.levels["full"].get(key) or self.levels["cheap"].get(key)

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        return {level: {k: v.to_list() for k, v in entries.items()} for level, entries in self.levels.items()}


class SearchState:
    """The state file of one search in ``out_dir`` (nothing is written when ``out_dir`` is None)."""

    def __init__(self, out_dir: str | Path | None, fingerprint: dict[str, Any], resume: bool) -> None:
        self.path = Path(out_dir) / STATE_FILE if out_dir is not None else None
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise tuples -> lists
        self.progress: dict[str, Any] = {}
        self.cache = ScoreCache()
        self.resumed = False
        if self.path is None or not self.path.exists():
            return
        if not resume:
            raise ConfigError(
                f"{self.path.parent} already holds a search state ({STATE_FILE}); pass resume=True "
                "(--resume) to continue it, or choose another output directory"
            )
        data = self._read()
        if data.get("fingerprint") != self.fingerprint:
            diff = sorted(
                k
                for k in set(self.fingerprint) | set(data.get("fingerprint", {}))
                if self.fingerprint.get(k) != data.get("fingerprint", {}).get(k)
            )
            raise ConfigError(
                f"cannot resume the search in {self.path.parent}: it was started with different "
                f"{', '.join(diff)}; rerun with the original settings or use another output directory"
            )
        self.progress = data.get("progress", {})
        self.cache = ScoreCache(data.get("cache"))
        self.resumed = True

    def _read(self) -> dict[str, Any]:
        assert self.path is not None
        from netsculpt.jsoncheck import read_json_file

        fix = (
            "restore it from a good copy, or delete it to start the search over in "
            f"{str(self.path.parent)!r} (its evaluations are lost)"
        )
        try:  # saves are atomic, so a broken file was damaged afterwards (a disk, a copy, an editor)
            data = read_json_file(self.path)  # strict: no NaN, duplicate keys or oversized files
        except CheckpointError as exc:
            raise CheckpointError(f"cannot resume the search: {exc}; {fix}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise CheckpointError(
                f"{str(self.path)!r} is not a netsculpt search state (version {STATE_VERSION}); {fix}"
            )
        return data

    def save(self, progress: dict[str, Any]) -> None:
        """Replace the saved progress (and the score cache) atomically."""
        self.progress = _plain(progress)
        if self.path is None:
            return
        write_json(
            self.path,
            {
                "version": STATE_VERSION,
                "fingerprint": self.fingerprint,
                "progress": self.progress,
                "cache": self.cache.to_dict(),
            },
        )

    def finish(self, result: dict[str, Any]) -> None:
        """Record the finished search's result (after its last scores are in the cache): resuming a
        finished search returns it instead of replaying, which re-scored what the end of a method
        scores after its last step (NSGA-II's front, the picks' full scores)."""
        self.save({**self.progress, FINISHED: result})

    @property
    def finished(self) -> dict[str, Any] | None:
        """The saved result of a search that finished, or None."""
        result = self.progress.get(FINISHED)
        return result if isinstance(result, dict) else None


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays -> JSON types (the state must round-trip exactly through JSON)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj
