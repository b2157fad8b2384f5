"""AdderNet: convolutions without multiplications, trained alone or with PKKD.

```python
from netsculpt.adder import PKKDLoss, to_adder
ann = to_adder(cnn, keep=["first", "last"])          # convs → AdderConv2d (+ BN), recorded as an edit
train(ann, train_loader, test_loader, config, loss_fn=PKKDLoss(ann, teacher_cnn))
```
See docs/adder.md.
"""

from __future__ import annotations

from netsculpt.adder.convert import to_adder, to_adder_
from netsculpt.adder.energy import ENERGY_PJ, OpCounts, count_ops
from netsculpt.adder.layer import AdderConv2d, neg_l1_distance
from netsculpt.adder.pkkd import PKKDLoss

__all__ = [
    "ENERGY_PJ",
    "AdderConv2d",
    "OpCounts",
    "PKKDLoss",
    "count_ops",
    "neg_l1_distance",
    "to_adder",
    "to_adder_",
]
