"""``PrunePlan``: which channels each group keeps — plain data, JSON round-trip, replayable."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsculpt.checks import shown
from netsculpt.errors import PruningError
from netsculpt.fileio import write_json

PLAN_VERSION = 1


@dataclass
class PrunePlan:
    """Group id -> kept channel indices (sorted), plus each group's original size for validation."""

    keep: dict[str, list[int]]
    sizes: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "keep": self.keep, "sizes": self.sizes, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrunePlan:
        if not isinstance(data, dict) or "keep" not in data or "sizes" not in data:
            got = f"a dict with keys {sorted(map(str, data))}" if isinstance(data, dict) else shown(data)
            raise PruningError(f"not a netsculpt prune plan: expected keys 'keep' and 'sizes', got {got}")
        version = data.get("version", PLAN_VERSION)
        if not isinstance(version, int) or version > PLAN_VERSION:
            raise PruningError(
                f"prune plan version {version!r} is not one this netsculpt reads (1..{PLAN_VERSION})"
            )
        try:
            keep = {str(k): sorted(int(i) for i in v) for k, v in data["keep"].items()}
            return cls(keep, {str(k): int(v) for k, v in data["sizes"].items()}, dict(data.get("meta") or {}))
        except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong shape
            raise PruningError(
                "not a netsculpt prune plan: 'keep' must map group ids to lists of channel indices and "
                f"'sizes' group ids to channel counts ({type(exc).__name__}: {exc})"
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> PrunePlan:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrunePlan:
        return cls.from_json(Path(path).read_text())

    @property
    def removed(self) -> int:
        return sum(self.sizes[g] - len(k) for g, k in self.keep.items())

    def summary(self) -> str:
        changed = {g: (self.sizes[g], len(k)) for g, k in self.keep.items() if len(k) < self.sizes[g]}
        lines = [f"PrunePlan: {len(changed)} groups pruned, {self.removed} channels removed"]
        lines += [f"  {g}: {a} -> {b}" for g, (a, b) in changed.items()]
        return "\n".join(lines)
