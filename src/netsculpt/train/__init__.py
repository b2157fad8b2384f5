"""Training and evaluation: a seeded, resumable loop with a pluggable loss, knowledge distillation,
and data-parallel training under ``torchrun``.

```python
from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate, train
result = train(model, train_loader, test_loader, TrainConfig.preset("lenet5_mnist5k"), out_dir="runs/a")
result = distill(pruned, model, train_loader, test_loader, TrainConfig.preset("finetune"), DistillConfig())
```
"""

from __future__ import annotations

from netsculpt.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from netsculpt.train.config import PRESETS, TrainConfig
from netsculpt.train.ddp import DistContext, init_distributed
from netsculpt.train.distill import DistillationLoss, DistillConfig, distill, kd_loss
from netsculpt.train.early_stop import EarlyStopping
from netsculpt.train.evaluate import LMEvaluation, evaluate
from netsculpt.train.loop import train
from netsculpt.train.losses import CrossEntropy, LossFn
from netsculpt.train.optim import lr_factor
from netsculpt.train.result import NonFiniteLossError, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "PRESETS",
    "CrossEntropy",
    "DistContext",
    "DistillConfig",
    "DistillationLoss",
    "EarlyStopping",
    "LMEvaluation",
    "LossFn",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "distill",
    "evaluate",
    "init_distributed",
    "kd_loss",
    "load_checkpoint",
    "lr_factor",
    "train",
]
