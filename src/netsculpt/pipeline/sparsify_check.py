"""A ``sparsify`` stage's N:M or block pattern checked against the layers it will see, early.

The stage refused a layer its pattern does not divide (an RGB stem conv's 3x3x3 = 27 inputs fit no 2:4
group) only when it started, after every earlier stage had run, possibly for hours. Now the runner checks
each such stage as soon as the shapes it will see are known: on the model built on the meta device before
the baseline trains (or on the baseline, for a checkpoint), and again after each later stage that may
change shapes (prune, search, depth, compound, GPP), so a pruned width that stops dividing is refused
right after the pruning, before the fine-tuning stages that follow it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.errors import ConfigError

#: stages that keep every layer's shape: a sparsify stage after them sees the shapes known before them
SHAPE_KEEPING = frozenset({"finetune", "distill", "cluster", "sparsify"})


def check_sparsify_stages(recipe: Any, model: nn.Module | None, after: int, source: str) -> None:
    """Check every later ``sparsify`` stage whose layers' shapes ``model`` already has.

    ``model`` is the output of plan stage ``after`` (0: the baseline, or the model built on the meta
    device before it; ``k``: ``recipe.stages[k - 1]``); ``source`` names it in the error. A stage with a
    shape-changing stage in between is checked once that one has run.
    """
    if model is None:
        return
    from netsculpt.sparsity import SparsityConfig, skip_filter
    from netsculpt.sparsity.apply import check_model

    for i, stage in enumerate(recipe.stages):
        if stage.kind != "sparsify" or i < after or stage.pattern == "unstructured":
            continue
        if any(s.kind not in SHAPE_KEEPING for s in recipe.stages[after:i]):
            continue  # a stage in between may change the shapes: checked after it
        where = f"stages.{i}.sparsify"
        try:
            skip = skip_filter(model, stage.skip, f"{where}.skip")
            sparse = SparsityConfig(
                sparsity=stage.sparsity, pattern=stage.pattern, block=stage.block, filter_fn=skip
            )
            check_model(model, sparse)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc} (checked on {source}, before any later stage runs)") from None
        except Exception:  # a shape a meta or lazy model does not know yet: the stage checks it itself
            continue
