"""Training and evaluation: a seeded, resumable loop with a pluggable loss (the seam for distillation).

```python
from netsculpt.train import TrainConfig, train, evaluate
result = train(model, train_loader, test_loader, TrainConfig.preset("lenet5_mnist5k"), out_dir="runs/a")
```
"""

from __future__ import annotations

from netsculpt.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from netsculpt.train.config import PRESETS, TrainConfig
from netsculpt.train.loop import evaluate, train
from netsculpt.train.losses import CrossEntropy, LossFn
from netsculpt.train.optim import lr_factor
from netsculpt.train.result import NonFiniteLossError, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "PRESETS",
    "CrossEntropy",
    "LossFn",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "lr_factor",
    "train",
]
