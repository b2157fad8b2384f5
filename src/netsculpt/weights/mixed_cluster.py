"""``cluster_auto``: search bits per layer under a byte budget, then palettize with those bits.

The search (:func:`netsculpt.weights.haq.search_bits`) scores k-means candidates on held-out batches; the
chosen bits become exact-name ``layer_bits`` of the final config, which is then trained (DKM) or fitted
(k-means) as usual, so saving and reloading are the ordinary packed format (each palette records its
own bits) and reload bit for bit. The real file size is checked against the budget afterwards.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes
from netsculpt.search.evaluator import take_batches
from netsculpt.search.executors import Executor
from netsculpt.weights.bit_space import BitSpace
from netsculpt.weights.cluster import cluster_model
from netsculpt.weights.config import PaletteConfig
from netsculpt.weights.haq import BitSearchConfig, BitSearchResult, search_bits


def _exact(name: str) -> str:
    """A ``layer_bits`` pattern matching exactly ``name`` (fnmatch's special characters escaped)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def cluster_auto(
    model: nn.Module,
    config: PaletteConfig,
    budget_bytes: int,
    train_loader: Any,
    held_loader: Iterable[Any],
    test_loader: Any = None,
    search: BitSearchConfig | None = None,
    *,
    held_batches: int = 4,
    state_dir: str | Path | None = None,
    resume: bool = False,
    executor: Executor | None = None,
    **train_kwargs: Any,
) -> tuple[nn.Module, BitSearchResult]:
    """Palettize ``model`` in place with searched bits per layer so ``model.safetensors`` fits
    ``budget_bytes``; ``config``'s method (DKM / k-means) and layout are kept, its bits replaced.
    ``state_dir`` / ``resume`` / ``executor``: see :func:`~netsculpt.weights.haq.search_bits` (``resume``
    also goes to the fine-tune when ``train_kwargs`` has an ``out_dir``)."""
    from netsculpt.weights.storage import packed_size_bytes

    if not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ConfigError(f"budget_bytes must be a positive integer of bytes, got {budget_bytes!r}")
    search = search or BitSearchConfig()
    batches = take_batches(held_loader, held_batches, "held-out")
    modes = module_modes(model)
    model.eval()
    space = BitSpace(model, config, search.low, search.high)
    result = search_bits(
        space, budget_bytes, batches, search, out_dir=state_dir, resume=resume, executor=executor
    )
    restore_modes(modes)
    final = copy.copy(config)
    final.bits = max(result.bits.values())
    final.layer_bits = {_exact(name): bits for name, bits in result.bits.items()}
    final.validate()
    if "out_dir" in train_kwargs:  # the fine-tune's checkpoints resume with the search
        train_kwargs.setdefault("resume", resume)
    cluster_model(model, final, train_loader, test_loader, **train_kwargs)
    size = packed_size_bytes(model)
    result.history["measured_bytes"] = size
    if size > budget_bytes:
        raise ConfigError(
            f"the mixed-bit model packs to {size:,} bytes, over the budget of {budget_bytes:,} "
            f"(predicted {result.predicted_bytes:,}); report this, and raise the budget meanwhile"
        )
    return model, result
