"""Weight sparsity: unstructured, N:M and block masks; one-shot, gradual (cubic) or GaP training.

```python
from netsculpt.sparsity import SparsityConfig, sparsify
sparsify(model, SparsityConfig(sparsity=0.9, method="gap"), train_loader, test_loader, TrainConfig(epochs=8))
ns.save(model, "out/m")            # zeros stored sparse: bitmap or run-length, whichever is smaller
```
See docs/sparsity.md.
"""

from __future__ import annotations

from netsculpt.sparsity.apply import grow_dense_, mask_layers_, partitions
from netsculpt.sparsity.config import METHODS, SparsityConfig
from netsculpt.sparsity.gpu import SemiStructuredResult, semi_structured_support, to_semi_structured_
from netsculpt.sparsity.masks import iter_masks, remove_masks_, skip_filter, sparsity_of, target_layers
from netsculpt.sparsity.patterns import Pattern, layer_mask, parse_pattern
from netsculpt.sparsity.run import SparsifyResult, plan_phases, sparsify
from netsculpt.sparsity.schedule import cubic_sparsity

__all__ = [
    "METHODS",
    "Pattern",
    "SemiStructuredResult",
    "SparsifyResult",
    "SparsityConfig",
    "cubic_sparsity",
    "grow_dense_",
    "iter_masks",
    "layer_mask",
    "mask_layers_",
    "parse_pattern",
    "partitions",
    "plan_phases",
    "remove_masks_",
    "semi_structured_support",
    "skip_filter",
    "sparsify",
    "sparsity_of",
    "target_layers",
    "to_semi_structured_",
]
