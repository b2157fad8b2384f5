"""NAO (neural architecture optimisation) over per-group widths under one cost budget.

Each round: train the encoder / predictor / decoder (:class:`~netsculpt.predictors.nao_model.NAOModel`)
on every candidate scored so far; take the ``top`` best, move their embeddings ``step`` against the
predicted metric's gradient (doubling the step, up to ``max_doublings`` times, until the decoded widths
are new), decode, scale onto the budget (as the genetic search's repair does: the search is left to find
the allocation's shape), score the new candidates cheaply, and give the ``elite`` best the full score.
The first round holds the uniform allocation and ``init_size - 1`` random shapes, so the winner is never
worse than uniform on the full score. With ``finalists`` > 0 the winner is instead chosen after a short
distillation of the best full-scored candidates and uniform (netsculpt.search.finalists). State is saved
after every round (and finalist); training is deterministic and the values it trains on are those this
run knew at that point, so a resumed search replays exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netsculpt.errors import ConfigError
from netsculpt.predictors.nao_model import NAOModel
from netsculpt.predictors.predictor import rank_quality
from netsculpt.search.evolution import initial_population
from netsculpt.search.finalists import choose_finalist, finalists_ready
from netsculpt.search.scoring import MethodOutput, SearchContext


class _Pool:
    """Candidates this run scored, in order, with the fullest value it knew of each at this point."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx, self.counts, self.values, self.full = ctx, {}, {}, set()

    def add(self, candidates: list[np.ndarray]) -> list[np.ndarray]:
        space = self.ctx.space
        new = {space.key(c): c for c in candidates if space.key(c) not in self.counts}
        for key, ev in zip(new, self.ctx.scorer.score(list(new.values()), "cheap")):
            self.counts[key], self.values[key] = new[key], self.ctx.scorer.value(ev)
        return list(new.values())

    def best(self, n: int) -> list[str]:
        return sorted(self.values, key=lambda k: self.values[k])[:n]

    def refine(self, elite: int) -> None:
        """Full scores for the ``elite`` best, until the best ``elite`` all have one."""
        for _ in range(len(self.values)):
            need = [k for k in self.best(elite) if k not in self.full]
            if not need:
                return
            for key, ev in zip(need, self.ctx.scorer.score([self.counts[k] for k in need], "full")):
                self.values[key] = self.ctx.scorer.value(ev)
                self.full.add(key)


def run(ctx: SearchContext) -> MethodOutput:
    config = ctx.config
    if len(ctx.targets) != 1:
        raise ConfigError("NAO meets one budget at a time; give one target (nsga2 / greedy serve several)")
    (target,) = ctx.targets
    space, metric = ctx.space, target.metric
    low = space.floors / space.sizes
    span = np.maximum(1.0 - low, 1e-9)

    def fitted(ratios: np.ndarray) -> np.ndarray:
        return space.fit(np.clip(ratios, low, 1.0), metric, target.value, config.tolerance)

    def scaled(counts_list: list[np.ndarray]) -> torch.Tensor:
        return torch.tensor(
            np.array([(space.ratios(c) - low) / span for c in counts_list]), dtype=torch.float32
        )

    done = finalists_ready(ctx)
    pool = _Pool(ctx)
    pool.add([fitted(r) for r in initial_population(ctx, config.init_size, [np.ones(len(space))])])
    pool.refine(config.elite)
    net = NAOModel(len(space), config.embed)
    records = [_record(ctx, pool, 0, [], None)]
    ctx.checkpoint({"round": 0, "rounds": records})
    for rnd in range(1, config.rounds + 1):
        keys = list(pool.counts)
        loss = net.fit(
            scaled([pool.counts[k] for k in keys]),
            np.array([pool.values[k] for k in keys]),
            epochs=config.nao_epochs,
            trade_off=config.trade_off,
            seed=config.seed + rnd,
        )
        top = [pool.counts[k] for k in pool.best(config.top)]
        proposals = _propose(net, scaled(top), config, low, span, fitted, set(pool.counts), space)
        if not proposals:
            ctx.say(f"round {rnd}: every moved embedding decoded to widths already scored; stopping")
            break
        expected = net.predicted(scaled(proposals))
        new = pool.add(proposals)
        pool.refine(config.elite)
        actual = [ctx.scorer.value(e) for e in ctx.scorer.score(new, "cheap")]
        quality = rank_quality(list(expected), actual) | {"train_loss": loss}
        records.append(_record(ctx, pool, rnd, new, quality))
        _save_model(ctx, net)
        ctx.checkpoint({"round": rnd, "rounds": records})
    best_key = min(pool.full, key=lambda k: pool.values[k])
    uniform = fitted(np.ones(len(space)))
    history = {
        "metric": config.metric,
        "cost": metric,
        "budget": target.value,
        "uniform": ctx.describe(uniform),
        "rounds": records,
    }
    counts = pool.counts[best_key]
    if config.finalists:
        ranked = [pool.counts[k] for k in sorted(pool.full, key=lambda k: pool.values[k])]
        counts, history["final"] = choose_finalist(ctx, ranked, uniform, done)
    return MethodOutput({target.label: counts}, history, {"rounds": records})


def _propose(net, top_u, config, low, span, fitted, seen: set[str], space) -> list[np.ndarray]:
    """One new candidate per top member where a (doubling) step decodes to unseen widths."""
    out: dict[str, np.ndarray] = {}
    step = config.step
    remaining = list(range(len(top_u)))
    for _ in range(config.max_doublings + 1):
        if not remaining:
            break
        decoded = net.improve(top_u[remaining], step).numpy()
        still = []
        for i, u in zip(remaining, decoded):
            counts = fitted(low + u * span)
            key = space.key(counts)
            if key in seen or key in out:
                still.append(i)
            else:
                out[key] = counts
        remaining, step = still, step * 2
    return list(out.values())


def _record(ctx: SearchContext, pool: _Pool, rnd: int, new: list, quality: dict | None) -> dict[str, Any]:
    key = min(pool.full, key=lambda k: pool.values[k])
    ctx.say(f"round {rnd}: {len(new)} new candidates; best {ctx.config.metric} {pool.values[key]:.4f}")
    return {
        "round": rnd,
        "new": [ctx.space.widths(c) for c in new],
        "best": pool.values[key],
        "best_widths": ctx.space.widths(pool.counts[key]),
        "pool": len(pool.counts),
        "evaluated": dict(ctx.scorer.evaluated),
        "predictor": quality,
    }


def _save_model(ctx: SearchContext, net: NAOModel) -> None:
    """The latest NAO network beside the state (safetensors + JSON), for inspection or reuse."""
    if ctx.state.path is None:
        return
    from safetensors.torch import save_file

    from netsculpt.fileio import atomic_write, write_json

    out = ctx.state.path.parent
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write(out / "nao_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    meta = {
        "mean": net.mean,
        "std": net.std,
        "groups": [[g, int(s)] for g, s in zip(ctx.space.ids, ctx.space.sizes)],
    }
    write_json(out / "nao_model.json", {**meta, "fingerprint": ctx.state.fingerprint})
