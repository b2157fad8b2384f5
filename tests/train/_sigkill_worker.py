"""Process body for the SIGKILL test: trains the tiny model and parks mid-epoch so it can be killed there.

``run([OUT_DIR, MARKER, EPOCHS, "kd"?])``, started by ``_sigkill.py``. In epoch 2, batch 3, it writes
MARKER and sleeps; the test waits for the marker (so the kill lands mid-epoch by construction, not by
timing) and kills it. With ``kd`` it runs the distillation case of ``_kd_case.py`` instead of plain training.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from netsculpt.train import CrossEntropy, TrainConfig, train
from tests.train import _kd_case, _tiny

PARK_EPOCH, PARK_BATCH = 2, 3


class Parking:
    """Wraps a loss (keeping its learnable part and recipe visible to the loop) and parks mid-epoch 2."""

    def __init__(self, base, per_epoch: int, marker: Path) -> None:
        self.base, self.per_epoch, self.marker, self.calls = base, per_epoch, marker, 0
        self.learnable = getattr(base, "learnable", None)
        if hasattr(base, "recipe"):
            self.recipe = base.recipe

    def __call__(self, model, inputs, targets):
        epoch, batch = divmod(self.calls, self.per_epoch)
        self.calls += 1
        if (epoch + 1, batch + 1) == (PARK_EPOCH, PARK_BATCH):
            self.marker.write_text("parked")
            time.sleep(600)  # the test kills us here
        return self.base(model, inputs, targets)


def run(argv: list[str]) -> None:
    out_dir, marker, epochs = Path(argv[0]), Path(argv[1]), int(argv[2])
    kd = len(argv) > 3 and argv[3] == "kd"
    torch.set_num_threads(1)
    train_loader, test_loader = _tiny.loaders()
    if kd:
        model = _kd_case.student()
        base, config = _kd_case.loss(model, _kd_case.teacher()), _kd_case.CONFIG
    else:
        model, base, config = _tiny.model(), CrossEntropy(), TrainConfig(epochs=epochs, lr=0.1)
    loss = Parking(base, len(train_loader), marker)
    train(model, train_loader, test_loader, config, out_dir=out_dir, loss_fn=loss)
