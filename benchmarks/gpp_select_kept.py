"""Choose how gpp's prune step follows the push, on held-out training digits with bases that never saw
them (issue 22, section 2): LeNet-5 widths (2, 3).

The earlier selections (``gpp_select_push.py``) scored 1,000 held-out digits the ``criteria_oneshot.py``
bases had trained on; the least-squares refit copies the base's outputs, so it carried the base's memory
of those digits into the pruned net (held-out: gpp + refit 1.9 pp above cross-entropy + hrel; on the test
digits 0.4 pp below). Here each base is trained (preset ``lenet5_mnist5k``, seed = base) on the training
split minus the 1,000 held-out digits; push / cross-entropy (3 epochs), calibration (16 x 64 digits) and
the fine-tune (``finetune``, 3 epochs, seed 0) use the same 3,000, and the 1,000 only score.

Candidates: the cross-entropy control pruned by hrel (with and without refit), and the push aimed at the
target widths with its kept set chosen by unit-free (``shrink`` 0, as before) or regularised gpp scores
(``shrink`` 1, the pruning criterion's), each pruned by ``gpp_reg`` or by the set the push aimed at
(``kept``), with the refit. Output: one line per row and a JSON of all rows.

    PYTHONPATH=src python benchmarks/gpp_select_kept.py --bases 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch
from _criteria_bench import set_threads

import gpp as bench
import netsculpt as ns
from netsculpt.fileio import write_json
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train

# the push of gpp_lenet_v3.json, the starting point (gpp.PUSH is now the choice made here)
V3_PUSH = {"push_weight": 0.1, "cov_weight": 0.1, "momentum": 0.0, "keep": "widths", "rest_weight": 0.3}
ARMS = {  # arm -> (push settings or None for cross-entropy, rows: (criterion, refit))
    "ce": (None, [("hrel", False), ("hrel", True)]),
    "push_s0": ({**V3_PUSH, "shrink": 0.0}, [("gpp", True), ("kept", True)]),
    "push_s1": ({**V3_PUSH, "shrink": 1.0}, [("gpp", True), ("kept", True)]),
    # the push strength again, now that the push aims at the set pruning keeps (rest_weight was 0.3)
    "push_s1_r1": ({**V3_PUSH, "shrink": 1.0, "rest_weight": 1.0}, [("gpp", True)]),
    "push_s1_r3": ({**V3_PUSH, "shrink": 1.0, "rest_weight": 3.0}, [("gpp", True)]),
    # the refit's ridge (0.1 was chosen on the leaky held-out digits), and no refit / no push at all
    "push_s1_r1_ridge": (
        {**V3_PUSH, "shrink": 1.0, "rest_weight": 1.0},
        [("gpp", False), ("gpp", 0.01), ("gpp", 1.0)],
    ),
    "ce_gpp": (None, [("gpp", True)]),
    # with the refit ridge 0.01 (held-out best above): gpp over 2 x 2 cell means (push and prune alike),
    # and the best existing criterion given the same recovery
    "push_s1_r1_grid2": ({**V3_PUSH, "shrink": 1.0, "rest_weight": 1.0, "grid": 2}, [("gpp_grid2", 0.01)]),
    "ce_hrel_ridge": (None, [("hrel", 0.01)]),
    # 0.01 was the lowest ridge tried: below it
    "push_s1_r1_lowridge": (
        {**V3_PUSH, "shrink": 1.0, "rest_weight": 1.0},
        [("gpp", 0.003), ("gpp", 0.001)],
    ),
}
DEFAULT_ARMS = "ce,push_s0,push_s1"


def clean_base(s: bench.Setting, seed: int, cache: Path, loaders) -> torch.nn.Module:
    """A base trained on the training split minus the held-out digits (cached with ns.save)."""
    folder = cache / f"{s.model}_seed{seed}"
    if (folder / "model.safetensors").exists():
        return ns.load(folder).eval()
    torch.manual_seed(seed)
    model = ns.create_model(s.model)
    train_loader, held = loaders(seed)
    train(model, train_loader, held, s.fit.replace(seed=seed))
    ns.save(model, folder)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default="0,1,2,3,4")
    parser.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--cache", default="runs/bench/gpp_heldout_bases")
    parser.add_argument("--out", default="benchmarks/results/gpp_select_kept.json")
    args = parser.parse_args(argv)
    set_threads(1)
    s = bench.settings()["lenet_w23"]

    def loaders(order: int = 0):
        train_loader, held, _ = holdout_loaders(
            "mnist5k", val_size=1000, batch_size=64, augment=True, order_seed=order, **s.data
        )
        return train_loader, held

    held = loaders()[1]
    plain = holdout_loaders("mnist5k", val_size=1000, batch_size=64, augment=False, **s.data)[0]
    calib = list(itertools.islice(plain, 16))  # training digits, never the held-out ones
    x = calib[0][0][:1]
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    for seed in (int(v) for v in args.bases.split(",")):
        base = clean_base(s, seed, Path(args.cache), loaders)
        results.setdefault("bases", {})[str(seed)] = evaluate(base, held)[0]
        layers = bench.push_layers(base, ns.trace(base, x), s)
        for arm in args.arms.split(","):
            push, rows = ARMS[arm]
            todo = [(n, r) for n, r in rows if str(seed) not in results.get(_key(arm, n, r), {})]
            if not todo:
                continue
            model, stats = bench.trained_arm(
                base, "push" if push else "ce", s, layers, 3, lambda: loaders(0), push or {}
            )
            for name, refit in todo:
                torch.manual_seed(0)
                small = bench.prune(copy.deepcopy(model), name, s, x, calib, refit, stats.get("kept")).eval()
                pruned = evaluate(small, held)[0]
                train(small, loaders(0)[0], held, TrainConfig.preset("finetune", epochs=3, seed=0))
                tuned = evaluate(small, held)[0]
                results.setdefault(_key(arm, name, refit), {})[str(seed)] = {"pruned": pruned, "tuned": tuned}
                print(f"base {seed} {_key(arm, name, refit):<22} right after {pruned:.3f} "
                      f"fine-tuned {tuned:.3f} kept {stats.get('kept')}", flush=True)  # fmt: skip
                write_json(out, results)
    print(f"held-out bases {_mean(results['bases'].values())}")
    for key, row in results.items():
        if key != "bases":
            print(f"{key:<22} held-out fine-tuned {_mean(r['tuned'] for r in row.values())}  n={len(row)}  "
                  f"per base {[round(100 * row[b]['tuned'], 1) for b in sorted(row)]}")  # fmt: skip
    return 0


def _key(arm: str, name: str, refit: bool | float) -> str:
    """``refit``: False, True (``gpp.REFIT_RIDGE``) or a float (that ridge)."""
    return f"{arm}/{name}" + (f"+refit@{refit:g}" if isinstance(refit, float) else "+refit" * refit)


def _mean(values) -> str:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * sd:.2f}"


if __name__ == "__main__":
    sys.exit(main())
