"""Pick the winner among a search's finalists by a short distillation, not by the score it searched on.

A search ranks hundreds of candidates by a cheap held-out score taken straight after pruning (BatchNorm
re-estimated, no training). What a user keeps is the model *after* fine-tuning, and the two orders
differ: on resnet20 / mnist5k at 0.5x MACs the cheap score ranked 1-epoch fine-tuned candidates at
Kendall τ 0.34 (docs/search.md, ground truth). So the few best full-scored candidates, plus the uniform
allocation as the reference, are each distilled from the unpruned model on the same fixed training
batches and scored on the full held-out batches; the best after distillation wins. Results are saved
after every finalist, so a resumed search distils none twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from netsculpt.errors import ConfigError
from netsculpt.search.scoring import SearchContext


def distil_finalists(
    ctx: SearchContext,
    candidates: dict[str, np.ndarray],
    *,
    kd_steps: int,
    lr: float,
    done: dict[str, dict[str, float]],
    save: Callable[[dict[str, dict[str, float]]], None],
) -> dict[str, dict[str, float]]:
    """``{key: {"accuracy", "loss"}}`` after distilling each candidate for ``kd_steps`` batches at ``lr``.

    ``done`` holds finalists a killed run already distilled (reused as they are); ``save`` is called with
    everything known after each new one. Every candidate sees the same batches in the same order.
    :func:`finalists_ready` has checked, before the search, that there is classification data for it.
    """
    from netsculpt.prune import apply_plan
    from netsculpt.search.n2n_students import distil_and_score, fixed_batches

    out = {k: dict(v) for k, v in done.items() if k in candidates}
    todo = [k for k in candidates if k not in out]
    if not todo:
        return out
    kd = fixed_batches(ctx.train_loader, kd_steps, ctx.config.seed)
    teacher = ctx.space.model.eval()
    held = ctx.eval_task.batches[: ctx.config.full_batches]
    for key in todo:
        counts = candidates[key]
        plan = ctx.space.plan(counts)
        student = apply_plan(ctx.space.model, plan, ctx.eval_task.example_inputs, graph=ctx.space.graph)
        acc, loss = distil_and_score(student, teacher, kd, held, epochs=1, lr=lr, seed=ctx.config.seed)
        out[key] = {"accuracy": acc, "loss": loss}
        ctx.say(f"finalist {len(out)}/{len(candidates)} distilled: accuracy {acc:.4f}, loss {loss:.4f}")
        save(out)
    return out


def finalists_ready(ctx: SearchContext) -> dict[str, dict[str, float]]:
    """Check before the search starts (not after it) that finalists can be distilled; returns what a
    killed run of this search already distilled (read now: the replayed rounds overwrite the progress)."""
    if not ctx.config.finalists:
        return {}
    if ctx.train_loader is None or ctx.eval_task is None or ctx.eval_task.task is not None:
        raise ConfigError(
            f"{ctx.config.method}'s finalists are distilled on classification training data: pass "
            "train_loader (a classification task), or set finalists=0"
        )
    return dict(ctx.state.progress.get("final", {}))


def choose_finalist(
    ctx: SearchContext, ranked: list[np.ndarray], uniform: np.ndarray, done: dict[str, dict[str, float]]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The winner among the ``finalists`` first of ``ranked`` (best first by the search's score) and
    ``uniform``, after each is distilled; and the history entry that says how each did."""
    config, space = ctx.config, ctx.space
    candidates: dict[str, np.ndarray] = {}
    for counts in [*ranked[: config.finalists], uniform]:
        candidates.setdefault(space.key(counts), np.asarray(counts))
    last = dict(ctx.state.progress)  # the method's own progress, kept beside the finalists'

    def save(results: dict) -> None:
        ctx.checkpoint({**last, "final": results})

    results = distil_finalists(ctx, candidates, kd_steps=config.final_kd_steps, lr=config.final_kd_lr,
                               done=done, save=save)  # fmt: skip
    winner, uniform_key = _best(results, config.metric), space.key(uniform)
    ctx.say(
        f"finalists: {'uniform' if winner == uniform_key else 'a searched shape'} wins after distillation"
    )
    rows = []
    for key, counts in candidates.items():
        known = ctx.scorer.best_known(counts)
        rows.append(
            {
                "widths": space.widths(counts),
                "searched": None if known is None else known.value(config.metric),
                "distilled": results[key],
                "uniform": key == uniform_key,
                "winner": key == winner,
            }
        )
    return candidates[winner], {"metric": config.metric, "finalists": rows}


def _best(results: dict[str, dict[str, float]], metric: str) -> str:
    """The key of the best finalist: lowest loss, or highest accuracy (ties: the first listed)."""
    sign = 1.0 if metric == "loss" else -1.0
    return min(results, key=lambda k: sign * results[k][metric])
