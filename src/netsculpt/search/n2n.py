"""N2N learning (Ashok et al., ICLR 2018): learn which blocks to remove, then how much to shrink the rest.

Two stages, each a policy trained with REINFORCE and a moving-average baseline
(:mod:`netsculpt.search.n2n_policy`):

1. ``remove_episodes`` students from the removal policy (a bidirectional LSTM over the removable residual
   blocks: keep or remove each).
2. ``shrink_episodes`` students from the shrink policy (an LSTM over the channel groups left after the
   best stage-1 removal: a keep fraction from ``fractions`` for each), which must meet the budget.

With ``fill`` (the default) every student is filled up to the budget (``StudentSpace.fill``): stage 1's
remaining groups are thinned evenly, stage 2's fractions are scaled by one factor, so each student costs
the target within ``tolerance``, and the reward's compression term is the budget's, ``C = 1 - target``:
students differ only in accuracy, the issue's "-error under the budget". Without ``fill`` (the paper's
setting) stage 1 keeps full widths with unconstrained rewards and stage 2's fractions are used as sampled;
on resnet56 at 0.2x params that picked a 0.025x student at chance accuracy after its short distillation.

Every ``rollouts`` students make one policy update. Each student is distilled briefly from the teacher
(``kd_steps`` fixed training batches) and scored on batches held out of the training split
(:mod:`netsculpt.search.n2n_students` has the reward). The pick is the best-rewarded student within the
budget (the noiseless policies' own student competes too); its plan carries the removed blocks in
``meta["remove_blocks"]`` — :func:`netsculpt.search.apply_search_plan` builds it.

After every student the agent (both policies, Adam moments, action generator, baselines, every record
and the pending rollouts) is written atomically to ``n2n_agent.safetensors``; ``resume=True`` continues
from there and reproduces the uninterrupted search (each student's fine-tune is seeded). The learned
policies are saved as ``policy.safetensors`` + ``policy.json``; the LSTMs read sequences of any length,
so ``policy=DIR`` warm-starts the search on a deeper model of the family.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.progress import track
from netsculpt.search.amc_policy import read_agent_file
from netsculpt.search.config import SearchConfig, _fraction, _int
from netsculpt.search.n2n_policy import N2NAgent
from netsculpt.search.n2n_students import (
    CONSTRAINT_REWARD,
    StudentSpace,
    distil_and_score,
    fixed_batches,
    n2n_reward,
)
from netsculpt.search.scoring import MethodOutput, SearchContext

AGENT_FILE, POLICY_TENSORS, POLICY_JSON = "n2n_agent.safetensors", "policy.safetensors", "policy.json"
VERSION = 1


@dataclass
class N2NConfig(SearchConfig):
    """N2N settings. ``rollouts`` students per policy update; ``baseline_decay`` of the moving-average
    baseline; ``fractions`` the shrink policy's keep fractions; each student is distilled on ``kd_steps``
    training batches for ``kd_epochs`` at ``kd_lr`` and scored on ``full_batches`` held-out batches;
    ``fill`` scales every student's widths up to the budget (False: the paper's widths as sampled)."""

    method: ClassVar[str] = "n2n"
    metric: str = "accuracy"
    remove_episodes: int = 20
    shrink_episodes: int = 30
    rollouts: int = 5
    hidden: int = 32
    lr: float = 0.02
    baseline_decay: float = 0.8
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    kd_steps: int = 20
    kd_epochs: int = 1
    kd_lr: float = 0.01
    policy: str | None = None
    fill: bool = True

    def validate(self) -> None:
        super().validate()
        for name, low in (
            ("remove_episodes", 0),
            ("shrink_episodes", 1),
            ("rollouts", 1),
            ("hidden", 2),
            ("kd_steps", 1),
            ("kd_epochs", 1),
        ):
            _int(self, name, low)
        _fraction(self, "lr", low=1e-9, high=1.0)
        _fraction(self, "kd_lr", low=1e-9, high=10.0)
        _fraction(self, "baseline_decay", low=0.0, high=1.0)
        if not self.fractions or any(not 0.0 < float(f) <= 1.0 for f in self.fractions):
            raise ConfigError(f"fractions must be keep fractions in (0, 1], got {self.fractions!r}")
        self.fractions = tuple(sorted({float(f) for f in self.fractions}))


def run(ctx: SearchContext) -> MethodOutput:
    config: N2NConfig = ctx.config
    if len(ctx.targets) != 1:
        raise ConfigError("N2N learns its policies for one budget; give one target")
    if ctx.eval_task is None or ctx.train_loader is None:
        raise ConfigError("N2N distils every student: search_widths must be given train_loader")
    if ctx.eval_task.task is not None:
        raise ConfigError(
            f"N2N's reward is classification accuracy after distillation; the {ctx.eval_task.task.name} task "
            "is not supported: use amc, genetic or nsga2 for it"
        )
    (target,) = ctx.targets
    students = StudentSpace(ctx.space, ctx.eval_task.example_inputs, target.metric)
    held = ctx.eval_task.batches
    kd = fixed_batches(ctx.train_loader, config.kd_steps, config.seed)
    teacher = ctx.space.model.eval()
    from netsculpt.train import evaluate

    teacher_acc, _ = evaluate(teacher, held)
    removal_episodes = config.remove_episodes if students.names else 0
    if not students.names:
        ctx.say("no removable residual blocks: N2N runs its shrink stage only")
    agent = N2NAgent(
        students.block_x.shape[1],
        students.group_x.shape[1],
        len(config.fractions),
        config.hidden,
        config.lr,
        config.baseline_decay,
        config.seed,
    )
    if config.policy:
        warm_start(agent, config.policy, config)
    out = ctx.state.path.parent if ctx.state.path is not None else None
    records: list[dict[str, Any]] = []
    pending: list[tuple[list[int], float]] = []
    if out is not None and ctx.state.resumed and (out / AGENT_FILE).exists():
        records, pending = load_agent(agent, out / AGENT_FILE)
        ctx.say(f"resuming N2N after student {len(records)}")
    cache = {r["key"]: r for r in records}
    total = removal_episodes + config.shrink_episodes

    def widths(removed: list[str], fractions: dict[int, float]) -> tuple[np.ndarray, str]:
        if not config.fill:
            return students.counts(fractions), "off"
        counts, fit = students.fill(removed, fractions, target.value, config.tolerance)
        if fit != "ok":
            ctx.say(
                f"student {len(records)}: the budget {target.metric}={target.value} is out of reach after "
                f"removing {len(removed)} blocks ({fit}: {students.predict(removed, counts):.3f} at the "
                f"{'widest' if fit == 'under' else 'narrowest'} widths)"
            )
        return counts, fit

    def evaluate_student(removed: list[str], counts: np.ndarray, constrained: bool, fit: str) -> dict:
        key = json.dumps([sorted(removed), [int(c) for c in counts]])
        if key in cache:
            return dict(cache[key])
        student = students.build(removed, counts)
        cost = students.cost(student)
        over = cost[target.metric] > target.value * (1 + config.tolerance)
        entry: dict[str, Any] = {
            "key": key,
            "cost": cost,
            "removed": sorted(removed),
            "widths": [int(c) for c in counts],
            "accuracy": None,
            "loss": None,
            "fill": fit,
        }
        if (constrained or config.fill) and over:
            entry["reward"] = CONSTRAINT_REWARD
        else:
            acc, loss = distil_and_score(
                student, teacher, kd, held, epochs=config.kd_epochs, lr=config.kd_lr, seed=config.seed
            )
            ctx.scorer.evaluated["full"] += 1  # a student is scored on the full held-out batches
            compression = 1.0 - (target.value if config.fill else cost[target.metric])
            entry.update(accuracy=acc, loss=loss, reward=n2n_reward(compression, acc, teacher_acc))
        entry["within"] = not over
        cache[key] = entry
        return dict(entry)

    def shrink_rollouts(removed: list[str]) -> list[tuple[list[int], np.ndarray, str, int]]:
        """One shrink-policy sample, or with a predictor ``screen_pool`` of them, of which the screen picks
        the students worth distilling (all while it lacks data or trust)."""
        active = students.active_groups(removed)
        n = config.screen_pool if ctx.screener is not None else 1
        pool = []
        for _ in range(n):
            actions = agent.shrink.sample(students.group_x[active], agent.gen)
            pool.append(
                (actions, *widths(removed, {i: config.fractions[a] for i, a in zip(active, actions)}))
            )
        if ctx.screener is None:
            return [(*pool[0], 1)]
        return [(*pool[i], n) for i in ctx.screener.select([c for _, c, _ in pool])]

    if ctx.screener is not None:  # after a resume the screen trains on the shrink students so far
        for r in records:
            if r["stage"] == "shrink":
                ctx.screener.record(r["widths"], -r["reward"])
    base_removed = _best_removal(records)
    queue: list[tuple[list[int], np.ndarray, str, int]] = []  # screened students still to distil
    # a screened step's picks are all distilled, so the last one may add up to screen_pool - 1 students
    for episode in track(itertools.count(len(records)), "N2N students", total=total - len(records)):
        if episode >= total and not queue:
            break
        stage = "removal" if episode < removal_episodes else "shrink"
        pool = 1
        if stage == "removal":
            actions = agent.removal.sample(students.block_x, agent.gen)
            removed = students.removed(actions)
            counts, fit = widths(removed, {i: 1.0 for i in students.active_groups(removed)})
            if not config.fill:
                counts = students.space.full()  # the paper's stage 1: depth only, full widths
        else:
            removed = base_removed
            if not queue:
                queue = shrink_rollouts(removed)
            actions, counts, fit, pool = queue.pop(0)
        entry = evaluate_student(removed, counts, stage == "shrink", fit)
        entry.update(episode=episode, stage=stage, actions=actions)
        if ctx.screener is not None:
            entry["pool"] = pool
            if stage == "shrink":
                ctx.screener.record(counts, -entry["reward"])
        records.append(entry)
        pending.append((actions, entry["reward"]))
        stage_end = episode + 1 == removal_episodes or (episode + 1 >= total and not queue)
        if len(pending) == config.rollouts or stage_end:
            x = students.block_x if stage == "removal" else students.group_x[students.active_groups(removed)]
            agent.learners[stage].update(x, pending)
            pending = []
        if episode + 1 == removal_episodes:
            base_removed = _best_removal(records)
            ctx.say(f"removal stage done: best removes {len(base_removed)} blocks {base_removed}")
        if episode % 5 == 4 or stage_end:
            best = max(r["reward"] for r in records)
            ctx.say(f"student {episode + 1}/{total} ({stage}): reward {entry['reward']:.4f}, best {best:.4f}")
        if out is not None:
            save_agent(agent, out / AGENT_FILE, records, pending)
        ctx.checkpoint({"episode": episode, "students": len(records)})
    base_removed = _best_removal(records)
    greedy_keep = agent.removal.sample(students.block_x, agent.gen, greedy=True) if students.names else []
    active = students.active_groups(base_removed)
    greedy_acts = agent.shrink.sample(students.group_x[active], agent.gen, greedy=True)
    policy_counts, policy_fit = widths(
        base_removed, {i: config.fractions[a] for i, a in zip(active, greedy_acts)}
    )
    policy_entry = evaluate_student(base_removed, policy_counts, True, policy_fit)
    picked = _pick([*records, {**policy_entry, "episode": "policy"}], target.metric)
    label = target.label
    meta = {
        "remove_blocks": [u.to_dict() for u in students.units if u.name in set(picked["removed"])],
        "predicted": picked["cost"],
        "estimate": {
            "accuracy": picked["accuracy"],
            "loss": picked["loss"],
            "samples": sum(int(y.shape[0]) for _, y in held),
            "after": "kd",
        },
        "reward": picked["reward"],
    }
    history = {
        "metric": "accuracy after a short distillation",
        "cost": target.metric,
        "budget": target.value,
        "teacher_accuracy": teacher_acc,
        "blocks": students.names,
        "stage1_removed": base_removed,
        "policy_removal": students.removed(greedy_keep),
        "policy": {k: policy_entry[k] for k in ("removed", "widths", "cost", "accuracy", "reward")},
        "picked": {
            "episode": picked["episode"],
            "removed": picked["removed"],
            "widths": picked["widths"],
            "cost": picked["cost"],
            "accuracy": picked["accuracy"],
            "reward": picked["reward"],
        },
        "students": records,
    }
    if out is not None:
        save_policy(agent, out, config, students)
    counts = np.array(picked["widths"], dtype=np.int64)
    return MethodOutput({label: counts}, history, {"students": records}, meta={label: meta})


def _best_removal(records: list[dict[str, Any]]) -> list[str]:
    stage1 = [r for r in records if r.get("stage") == "removal"]
    return list(max(stage1, key=lambda r: r["reward"])["removed"]) if stage1 else []


def _pick(entries: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    within = [e for e in entries if e["within"] and e["accuracy"] is not None]
    if not within:
        closest = min(e["cost"][metric] for e in entries)
        raise ConfigError(
            f"no N2N student met the budget (the smallest reached {closest:.3f}); raise the target, add "
            "shrink_episodes, or include smaller keep fractions"
        )
    return max(within, key=lambda e: (e["reward"], e["accuracy"]))


# -- files ---------------------------------------------------------------------------------------------
def save_agent(agent: N2NAgent, path: Path, records: list[dict], pending: list) -> None:
    from safetensors.torch import save_file

    from netsculpt.fileio import atomic_write

    meta = {
        "version": str(VERSION),
        "agent": json.dumps(agent.meta()),
        "records": json.dumps(records),
        "pending": json.dumps(pending),
    }
    tensors = agent.tensors()
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def load_agent(agent: N2NAgent, path: Path) -> tuple[list[dict], list[tuple[list[int], float]]]:
    from netsculpt.jsoncheck import parse_json

    tensors, meta = read_agent_file(path)
    if meta.get("version") != str(VERSION) or not {"agent", "records", "pending"} <= set(meta):
        raise CheckpointError(f"{str(path)!r} is not an N2N agent checkpoint (version {VERSION})")
    records = parse_json(meta["records"], str(path))
    pending = [(list(a), float(r)) for a, r in parse_json(meta["pending"], str(path))]
    try:
        agent.restore(tensors, parse_json(meta["agent"], str(path)))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r} does not fit this search's policies: {exc}") from None
    return records, pending


def save_policy(agent: N2NAgent, out: Path, config: N2NConfig, students: StudentSpace) -> list[Path]:
    from safetensors.torch import save_file

    from netsculpt.fileio import atomic_write, write_json

    tensors = agent.weights()
    atomic_write(out / POLICY_TENSORS, lambda p: save_file(tensors, str(p)))
    info = {
        "version": VERSION,
        "method": "n2n",
        "hidden": config.hidden,
        "fractions": list(config.fractions),
        "block_features": int(students.block_x.shape[1]),
        "group_features": int(students.group_x.shape[1]),
        "blocks": students.names,
        "groups": len(students.space),
    }
    return [out / POLICY_TENSORS, write_json(out / POLICY_JSON, info)]


def warm_start(agent: N2NAgent, path: str | Path, config: N2NConfig) -> None:
    """Start from a saved N2N policy (transfer from a smaller teacher of the same family)."""
    from netsculpt.jsoncheck import read_json_file

    folder = Path(path)
    folder = folder.parent if folder.suffix == ".json" else folder
    if not (folder / POLICY_JSON).is_file() or not (folder / POLICY_TENSORS).is_file():
        raise ConfigError(
            f"no N2N policy in {str(folder)!r}: expected {POLICY_JSON} and {POLICY_TENSORS} "
            "(written by `netsculpt search --method n2n --out DIR`)"
        )
    info = read_json_file(folder / POLICY_JSON)
    if not isinstance(info, dict) or info.get("method") != "n2n" or info.get("version") != VERSION:
        raise CheckpointError(f"{str(folder / POLICY_JSON)!r} is not an N2N policy (version {VERSION})")
    if info.get("hidden") != config.hidden or info.get("fractions") != list(config.fractions):
        raise ConfigError(
            f"the policy in {str(folder)!r} was trained with hidden={info.get('hidden')} and fractions="
            f"{info.get('fractions')}; set the same to warm-start from it"
        )
    tensors, _ = read_agent_file(folder / POLICY_TENSORS)
    try:
        agent.load_weights(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(folder / POLICY_TENSORS)!r} does not fit the policies: {exc}") from None
