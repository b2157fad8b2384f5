"""What one sparsification run does: target, pattern, method and schedule, checked up front."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsculpt.errors import ConfigError
from netsculpt.sparsity.masks import FilterFn
from netsculpt.sparsity.patterns import Pattern, parse_pattern

METHODS = ("magnitude", "gap")
SCHEDULES = ("oneshot", "gradual")
SCOPES = ("auto", "layer", "global", "erk")


@dataclass
class SparsityConfig:
    """``sparsity``: fraction of zero weights in each selected layer (ignored by N:M, which fixes it).

    ``method="magnitude"`` prunes by |w|, ``schedule="oneshot"`` at once then fine-tunes, ``"gradual"``
    on Zhu & Gupta's cubic ramp over ``ramp_phases`` phases. ``method="gap"`` splits the layers into
    ``partitions`` groups (model order) and cycles: one group grows dense for ``phase_epochs`` while the
    others stay sparse, then is pruned back; the last ``final_epochs`` (0: ``phase_epochs``) train all
    groups sparse: a longer final phase lets the sparse network settle after the last regrowth.

    ``scope`` splits the sparsity between layers: ``"layer"`` the same fraction each, ``"global"`` one
    magnitude threshold over the layers masked together, ``"erk"`` by shape (Erdős–Rényi-Kernel: small
    layers denser, :mod:`netsculpt.sparsity.distribution`); all three zero the same fraction overall.
    ``"auto"`` (default) is ``"global"`` for the unstructured pattern, which kept more accuracy than an
    equal fraction per layer on every model measured (docs/sparsity.md), and ``"layer"`` for N:M and
    block patterns, whose groups fix each layer's fraction.

    ``restart_lr`` (every multi-phase plan: gradual and GaP): ``True`` runs the training recipe's whole lr
    schedule in each phase (warm restarts, the first behaviour); ``False`` runs one schedule over all the
    phases, the shape a dense run of the same total epochs gets: restarting at full lr every phase keeps
    knocking the weights out of the minimum the decay was settling into (measured on resnet20 GaP in
    docs/sparsity.md).
    """

    VERSION: ClassVar[int] = 1

    sparsity: float = 0.9
    pattern: str = "unstructured"
    block: tuple[int, int] = (4, 4)
    scope: str = "auto"
    method: str = "magnitude"
    schedule: str = "oneshot"
    ramp_phases: int = 4
    partitions: int = 4
    phase_epochs: int = 1
    final_epochs: int = 0
    restart_lr: bool = True
    filter_fn: FilterFn | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.block = tuple(self.block)  # type: ignore[assignment]
        self.validate()

    @property
    def parsed(self) -> Pattern:
        return parse_pattern(self.pattern, self.block)

    @property
    def effective_scope(self) -> str:
        """The split ``scope`` stands for: ``"auto"`` resolved by the pattern."""
        if self.scope != "auto":
            return self.scope
        return "global" if self.parsed.kind == "unstructured" else "layer"

    def target(self) -> float:
        fixed = self.parsed.fixed_sparsity
        return self.sparsity if fixed is None else fixed

    def validate(self) -> None:
        """Raise ConfigError naming the bad field and what is accepted."""
        self.parsed  # noqa: B018 (parses, raising on a bad pattern)
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)):
            raise ConfigError(f"sparsity must be a number in [0, 1), got {self.sparsity!r}")
        if not 0.0 <= float(self.sparsity) < 1.0:
            raise ConfigError(
                f"sparsity must lie in [0, 1) (1 would remove every weight), got {self.sparsity}"
            )
        for name, value, allowed in [
            ("method", self.method, METHODS),
            ("schedule", self.schedule, SCHEDULES),
            ("scope", self.scope, SCOPES),
        ]:
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is not supported; use one of {', '.join(allowed)}")
        if self.scope not in ("auto", "layer") and self.parsed.kind != "unstructured":
            raise ConfigError(f"scope={self.scope!r} applies to the unstructured pattern only")
        for name in ("ramp_phases", "partitions", "phase_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        value = self.final_epochs
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"final_epochs must be a non-negative integer (0: phase_epochs), got {value!r}")
        if not isinstance(self.restart_lr, bool):
            raise ConfigError(f"restart_lr must be true or false, got {self.restart_lr!r}")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "filter_fn"}
        return {"version": self.VERSION, **data, "block": list(self.block)}
