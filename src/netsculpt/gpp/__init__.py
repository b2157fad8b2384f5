"""Grow-Push-Prune (Tian, Arbel & Clark 2019): push class separation onto few channels, prune with the
``gpp`` criterion, recover by least-squares refits of the next layers. See docs/gpp.md.

```python
big = grow(model, x, {"conv2": 16})                        # 16 more filters, same function
loss = PushLoss("relu2")                                   # alternate task / push batches
train(model, train_loader, test_loader, config, loss_fn=loss)
small = ns.prune(model, x, criterion="gpp", widths=..., data=calib)
refit_consumers_(model, small, calib, kept_out=kept_outputs(ns.trace(model, x), plan))
```
"""

from __future__ import annotations

from netsculpt.gpp.branch import ConvBranches, grow_branch
from netsculpt.gpp.grow import grow
from netsculpt.gpp.push import PushLoss, scatter_ratio_and_decorrelation
from netsculpt.gpp.refit import changed_consumers, kept_outputs, refit_consumers_, refit_layer_
from netsculpt.importance.gpp import lda_channel_scores

__all__ = [
    "ConvBranches",
    "PushLoss",
    "changed_consumers",
    "grow",
    "grow_branch",
    "kept_outputs",
    "lda_channel_scores",
    "refit_consumers_",
    "refit_layer_",
    "scatter_ratio_and_decorrelation",
]
