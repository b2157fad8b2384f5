"""What a training run hands back: its per-epoch history, and the error raised when it diverges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from netsculpt.errors import NetsculptError


@dataclass
class TrainResult:
    """The run's history (one dict per completed epoch, across resumes) and its headline numbers.

    ``epochs_run`` counts every completed epoch of the run, including those done before a resume;
    ``resumed_from`` is the epoch the last call continued from (None for a fresh run).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    final_acc: float = float("nan")
    best_acc: float = float("nan")
    epochs_run: int = 0
    resumed_from: int | None = None
    best_epoch: int | None = None  # with early stopping: the held-out best, whose weights the model holds
    stopped_early: bool = False

    @classmethod
    def from_history(cls, history: list[dict[str, float]], resumed_from: int | None) -> TrainResult:
        accs = [h["test_acc"] for h in history]
        return cls(
            history=[dict(h) for h in history],
            final_acc=accs[-1] if accs else float("nan"),
            best_acc=max(accs) if accs else float("nan"),
            epochs_run=len(history),
            resumed_from=resumed_from,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NonFiniteLossError(NetsculptError, FloatingPointError):
    """The loss became NaN or inf; the model was rolled back to its last good state.

    ``result`` holds the history of the epochs that did complete, so a caller can still report them.
    """

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result
