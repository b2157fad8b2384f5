"""What a person watching a training run sees: the progress line of each epoch, on rank 0 only."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from netsculpt.progress import progress_bar

if TYPE_CHECKING:
    from netsculpt.tasks import Task


class NoBar:
    """What ranks other than 0 get instead of a progress bar: logging is rank 0's job."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def epoch_bars(is_main: bool) -> Any:
    """A context manager giving the epoch bars (rank 0) or a :class:`NoBar` (every other rank)."""
    return progress_bar(transient=False) if is_main else contextlib.nullcontext(NoBar())


def epoch_status(train_loss: float, train_acc: float | None, test_metric: float, task: Task | None) -> str:
    """An epoch's progress line; a dense task's metric under its display name, in percent as the run
    summary shows it (it read ``test map 0.0018`` while the final line said ``test map 0.18%``)."""
    if task is None:
        return f"loss {train_loss:.4f} acc {train_acc:.2%}  test acc {test_metric:.2%}"
    from netsculpt.tasks.metrics import metric_label

    return f"loss {train_loss:.4f}  test {metric_label(task.metric)} {test_metric:.2%}"
