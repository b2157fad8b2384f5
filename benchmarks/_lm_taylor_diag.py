"""Why taylor loses to random in ``lm_criteria.py``: per-group Spearman agreement of taylor, fisher and
l1, and plans mixing taylor's and fisher's choices (SwiGLU units by one, heads by the other).

Reads the base ``lm_criteria.py`` cached; same 8 calibration batches.

    PYTHONPATH=src python benchmarks/_lm_taylor_diag.py
"""

from __future__ import annotations

import numpy as np
import torch
from lm_criteria import BATCH, SEQ
from scipy.stats import spearmanr
from torch.utils.data import DataLoader, Subset

import netsculpt as ns
from netsculpt.data.text import TokenWindows, byte_splits, stdlib_docstrings
from netsculpt.importance import get_criterion
from netsculpt.train import evaluate


def main() -> None:
    from pathlib import Path

    torch.set_num_threads(1)
    cache = Path.home() / ".cache" / "netsculpt" / "bench" / "lm_criteria"
    splits = byte_splits(stdlib_docstrings(cache), SEQ)
    model = ns.load(cache / "llama_h128_l4_e2").eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(splits["train"].shape[0], generator=g)[: 8 * BATCH].tolist()
    calib = DataLoader(Subset(TokenWindows(splits["train"]), idx), batch_size=BATCH)
    test = DataLoader(TokenWindows(splits["test"]), batch_size=64)
    ex = splits["test"][:2]
    graph = ns.trace(model, ex)
    sc = {c: get_criterion(c).score(model, graph, calib) for c in ("taylor", "fisher", "l1")}
    sizes = {gid: len(s) for gid, s in sc["taylor"].items()}
    for gid in sc["taylor"]:
        rho = {f"{a}~{b}": spearmanr(sc[a][gid], sc[b][gid])[0] for a, b in (("taylor", "fisher"),
               ("taylor", "l1"), ("fisher", "l1"))}  # fmt: skip
        print(gid, "spearman", " ".join(f"{k} {v:.2f}" for k, v in rho.items()))

    def ppl(keep: dict[str, list[int]]) -> float:
        return evaluate(ns.apply_plan(model, ns.PrunePlan(keep, sizes), ex), test).perplexity  # type: ignore[attr-defined]

    low = lambda s: sorted(np.argsort(s)[: len(s) // 2].tolist())  # noqa: E731
    top = lambda s: sorted(np.argsort(s)[len(s) // 2 :].tolist())  # noqa: E731
    for c in ("taylor", "fisher"):
        print(
            f"{c} keeping the lowest-scored half: test ppl {ppl({k: low(s) for k, s in sc[c].items()}):.3f}"
        )
    for mlp_c, head_c in (("taylor", "fisher"), ("fisher", "taylor")):
        keep = {gid: top(sc[mlp_c if "mlp" in gid else head_c][gid]) for gid in sizes}
        print(f"MLP by {mlp_c}, heads by {head_c}: test ppl {ppl(keep):.3f}")


if __name__ == "__main__":
    main()
