"""Subprocess for the SIGKILL test: trains the tiny model and parks mid-epoch so it can be killed there.

Usage: python _sigkill_worker.py OUT_DIR MARKER EPOCHS. In epoch 2, batch 3, it writes MARKER and sleeps;
the test waits for the marker (so the kill lands mid-epoch by construction, not by timing) and kills it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tiny

from netsculpt.train import CrossEntropy, TrainConfig, train

PARK_EPOCH, PARK_BATCH = 2, 3


def main() -> None:
    out_dir, marker, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    train_loader, test_loader = _tiny.loaders()
    calls = {"batch": 0}
    per_epoch = len(train_loader)
    base = CrossEntropy()

    def parking_loss(model, inputs, targets):
        epoch, batch = divmod(calls["batch"], per_epoch)
        calls["batch"] += 1
        if (epoch + 1, batch + 1) == (PARK_EPOCH, PARK_BATCH):
            marker.write_text("parked")
            time.sleep(600)  # the test kills us here
        return base(model, inputs, targets)

    train(
        _tiny.model(),
        train_loader,
        test_loader,
        TrainConfig(epochs=epochs, lr=0.1),
        out_dir=out_dir,
        loss_fn=parking_loss,
    )


if __name__ == "__main__":
    main()
