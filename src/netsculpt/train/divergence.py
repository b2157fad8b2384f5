"""What happens when the loss stops being finite: the signal raised mid-epoch and the user's error.

The batch loop raises :class:`Diverged`; the run restores its last good state and turns it into a
:class:`~netsculpt.train.result.NonFiniteLossError` whose message says where it happened and what to try.
"""

from __future__ import annotations

from netsculpt.train.config import TrainConfig
from netsculpt.train.result import NonFiniteLossError, TrainResult


class Diverged(Exception):
    """Raised inside an epoch at the first non-finite loss (caught by the run, never by a user)."""

    def __init__(self, epoch: int, batch: int, value: float) -> None:
        super().__init__(f"non-finite loss {value} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.value = epoch, batch, value


def nonfinite_error(
    diverged: Diverged, where: str, steps_per_epoch: int, config: TrainConfig, result: TrainResult
) -> NonFiniteLossError:
    """The error a user reads once the model was restored to ``where``."""
    message = (
        f"training stopped: the loss became {diverged.value} at epoch {diverged.epoch}, batch "
        f"{diverged.batch + 1}/{steps_per_epoch}. The model was restored to {where}. Try a lower "
        f"learning rate (lr={config.lr}), set grad_clip, or check the data and loss for NaN/inf."
    )
    return NonFiniteLossError(message, result)
