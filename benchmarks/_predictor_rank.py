"""Rank quality of the predictors on the cached ground truth (benchmarks/_predictor_truth.py).

Repeated 3-fold cross-validation: each fold's model trains on the other 2/3 of the candidates and
ranks its 1/3 by predicted fine-tuned held-out loss; Kendall τ and Spearman ρ against the measured
loss, mean ± sd over folds. The candidates at the bar's 0.5x MACs (where MACs cannot do the ranking)
are too few per fold, so their τ is over the pooled out-of-fold predictions, mean ± sd over repeats.
Baselines need no training: the raw cheap score and the candidate's MACs alone. The noise
ceiling is τ between two fine-tune seeds of the same candidates: no predictor can beat its own truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netsculpt.predictors import GraphFeatures, Predictor, rank_quality

RANKERS = (
    # name, kind, extended features, loss, ensemble members
    ("GCN, extended features, rank loss, 3 seeds", "gcn", True, "rank", 3),
    ("GCN, extended features, rank loss", "gcn", True, "rank", 1),
    ("GCN, first features, MSE (as screened)", "gcn", False, "mse", 1),
    ("MLP on widths, rank loss", "mlp", False, "rank", 1),
    ("MLP on widths, MSE", "mlp", False, "mse", 1),
)


def _predict(kind, features, loss, members, train_x, train_y, test_x, split: int) -> np.ndarray:
    preds = [
        Predictor(kind, features, {}, seed=100 * split + m, loss=loss).fit(train_x, train_y).predict(test_x)
        for m in range(members)
    ]
    return np.mean(preds, axis=0)


def rank_rows(truth: dict, space: Any, model: Any, splits: int) -> tuple[list[tuple], dict[str, Any]]:
    feats = {False: GraphFeatures(space, model), True: GraphFeatures(space, model, extended=True)}
    rows = [truth["candidates"][k] for k in sorted(truth["candidates"], key=int)]
    counts = [np.array(r["widths"]) for r in rows]
    y = np.array([r["ft_loss"] for r in rows])
    at_half = np.array([r["target"] == 0.5 for r in rows])
    fixed = {
        "cheap score (no training)": np.array([r["cheap_loss"] for r in rows]),
        "MACs alone (no training)": -np.array([r["macs"] for r in rows]),
    }
    out: dict[str, dict[str, list[float]]] = {}
    rng = np.random.default_rng(0)
    for r in range(max(1, splits // 3)):  # 3-fold cross-validation, repeated with fresh folds
        folds = np.array_split(rng.permutation(len(rows)), 3)
        pooled: dict[str, np.ndarray] = {}  # each candidate predicted by the fold model that never saw it
        for f, te in enumerate(folds):
            tr = np.concatenate([folds[g] for g in range(3) if g != f])
            preds = {
                name: _predict(kind, feats[extended], loss, members, [counts[i] for i in tr], y[tr],
                               [counts[i] for i in te], 3 * r + f)
                for name, kind, extended, loss, members in RANKERS
            }  # fmt: skip
            preds.update({name: v[te] for name, v in fixed.items()})
            for name, p in preds.items():
                rec = out.setdefault(name, {"tau": [], "rho": [], "tau_half": []})
                q = rank_quality(p, y[te])
                rec["tau"].append(q["kendall"])
                rec["rho"].append(q["spearman"])
                pooled.setdefault(name, np.zeros(len(rows)))[te] = p
        for name, p in pooled.items():  # the 0.5x candidates are too few per fold: rank them pooled
            out[name]["tau_half"].append(rank_quality(p[at_half], y[at_half])["kendall"])
    table_rows = []
    for name, rec in out.items():
        tau, rho, th = (np.array([v for v in rec[k] if v is not None]) for k in ("tau", "rho", "tau_half"))
        table_rows.append(
            (
                name,
                f"{tau.mean():.3f}",
                f"{tau.std():.3f}",
                f"{rho.mean():.3f}",
                f"{th.mean():.3f}" if len(th) else "-",
                f"{th.std():.3f}" if len(th) else "-",
            )
        )
    info = {
        "n": len(rows),
        "n_test": len(rows) // 3,
        "n_half": int(at_half.sum()),
        "summary": {
            name: {k: float(np.mean([v for v in rec[k] if v is not None] or [np.nan])) for k in rec}
            for name, rec in out.items()
        },
        "sd": {name: float(np.std([v for v in rec["tau"] if v is not None])) for name, rec in out.items()},
    }
    return table_rows, info


def fresh_rows(train: dict, test: dict, space: Any, model: Any) -> tuple[list[tuple], dict[str, Any]]:
    """Every ranker trained once on all of ``train``'s candidates, τ / ρ on ``test``'s: candidates
    measured after the rankers' settings were chosen, so nothing was selected on them."""
    feats = {False: GraphFeatures(space, model), True: GraphFeatures(space, model, extended=True)}
    tr = [train["candidates"][k] for k in sorted(train["candidates"], key=int)]
    te = [test["candidates"][k] for k in sorted(test["candidates"], key=int)]
    y_tr, y_te = np.array([r["ft_loss"] for r in tr]), np.array([r["ft_loss"] for r in te])
    c_tr, c_te = [np.array(r["widths"]) for r in tr], [np.array(r["widths"]) for r in te]
    preds = {
        name: _predict(kind, feats[extended], loss, members, c_tr, y_tr, c_te, 0)
        for name, kind, extended, loss, members in RANKERS
    }
    preds["cheap score (no training)"] = np.array([r["cheap_loss"] for r in te])
    rows, summary = [], {}
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(te), len(te)) for _ in range(300)]  # bootstrap over test candidates
    easy = y_te < np.quantile(y_te, 0.9)  # without the worst tenth (collapsed candidates rank easily)
    for name, p in preds.items():
        q = rank_quality(p, y_te)
        boot = [rank_quality(p[d], y_te[d])["kendall"] for d in draws]
        sd = float(np.std([b for b in boot if b is not None]))
        trimmed = rank_quality(p[easy], y_te[easy])["kendall"]
        summary[name] = {"tau": q["kendall"], "rho": q["spearman"], "tau_sd": sd, "tau_trimmed": trimmed}
        rows.append((name, f"{q['kendall']:.3f}", f"{sd:.3f}", f"{q['spearman']:.3f}", f"{trimmed:.3f}"))
    return rows, {"n_train": len(tr), "n_test": len(te), "summary": summary}


def noise_ceiling(truth: dict) -> dict[str, Any]:
    """τ between the seed-0 and seed-1 fine-tunes of the repeated candidates (loss and accuracy), and the
    mean absolute difference of their losses beside the spread of the losses across candidates."""
    rows = [r for r in truth["candidates"].values() if "repeat" in r]
    if len(rows) < 3:
        return {"n": len(rows)}
    a, b = np.array([r["ft_loss"] for r in rows]), np.array([r["repeat"]["ft_loss"] for r in rows])
    acc_a, acc_b = np.array([r["ft_acc"] for r in rows]), np.array([r["repeat"]["ft_acc"] for r in rows])
    half = np.array([r["target"] == 0.5 for r in rows])
    return {
        "n": len(rows),
        "n_half": int(half.sum()),
        "tau_half": rank_quality(a[half], b[half])["kendall"] if half.sum() >= 3 else None,
        "rms_diff": float(np.sqrt(np.mean((a - b) ** 2))),
        "tau_loss": rank_quality(a, b)["kendall"],
        "tau_acc": rank_quality(acc_a, acc_b)["kendall"],
        "mean_abs_diff": float(np.abs(a - b).mean()),
        "spread_sd": float(np.std(a)),
    }
