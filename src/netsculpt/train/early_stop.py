"""Early stopping on a held-out split carved from the training data, never on the test split.

The test split is what a run reports; choosing when to stop by looking at it would tune the result to
its own exam. :func:`netsculpt.train.train` therefore scores a separate ``val_loader`` every epoch
(recorded as ``val_acc`` / ``val_loss``) and this rule reads only those numbers. The decision is a pure
function of the history, which every checkpoint holds, so a resumed run stops where the uninterrupted
one would have; the best weights so far travel in the checkpoint too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from netsculpt.errors import ConfigError

VAL_KEY = "val_acc"


@dataclass
class EarlyStopping:
    """Stop once ``val_acc`` has not beaten its best by more than ``min_delta`` for ``patience`` epochs.

    ``restore_best`` puts the weights of the best held-out epoch back at the end (the learning-rate
    schedule still runs to ``epochs``: a stop before its end means the held-out digits saw no gain).
    ``min_epochs`` epochs always run first, so a noisy start cannot end the run.
    """

    VERSION: ClassVar[int] = 1

    patience: int = 3
    min_delta: float = 0.0
    min_epochs: int = 1
    restore_best: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("patience", "min_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"early stopping: {name} must be an integer >= 1, got {value!r}")
        delta = self.min_delta
        number = isinstance(delta, int | float) and not isinstance(delta, bool)
        if not number or not math.isfinite(delta) or delta < 0:
            raise ConfigError(f"early stopping: min_delta must be a number >= 0, got {delta!r}")
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"early stopping: restore_best is true or false, not {self.restore_best!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.VERSION, **dataclasses.asdict(self)}

    def best_epoch(self, history: list[dict[str, Any]]) -> int | None:
        """The epoch (1-based, as recorded) with the best held-out accuracy; ties keep the earlier one."""
        best, best_epoch = -math.inf, None
        for record in history:
            value = record.get(VAL_KEY)
            if value is None:
                raise ConfigError(
                    f"early stopping reads {VAL_KEY!r} from every epoch's record; epoch "
                    f"{record.get('epoch')} has none (pass val_loader= to train)"
                )
            if value > best + self.min_delta or best_epoch is None:
                best, best_epoch = value, int(record["epoch"])
        return best_epoch

    def should_stop(self, history: list[dict[str, Any]]) -> bool:
        """True once ``patience`` epochs have passed without a held-out gain (after ``min_epochs``)."""
        if len(history) < self.min_epochs:
            return False
        best = self.best_epoch(history)
        return best is not None and int(history[-1]["epoch"]) - best >= self.patience
