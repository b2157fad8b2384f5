"""A grow -> push -> prune row (issue 22, section 2) on the bundled digits: LeNet-5 base (the
``criteria_oneshot.py`` bases), an Inception-style 3x3 branch of 8 channels beside conv2
(``grow_branch``, same function), 3 epochs of the push aimed at the kept set (``benchmarks/gpp.py``'s
``PUSH``), prune with ``gpp_reg`` + refit to conv1 2, conv2 2 + 1 branch channel (~ the (2, 3) rows' MACs),
the same 3-epoch fine-tune. The branch spec was not tuned. Results: benchmarks/results/gpp_lenet_grown.json.

    PYTHONPATH=src python benchmarks/gpp_grown.py 0,1,2,3,4
"""

import itertools
import sys
import time
from pathlib import Path

from _criteria_bench import set_threads
from criteria_oneshot import base_model

import gpp as G
import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.data import make_loaders
from netsculpt.fileio import write_json
from netsculpt.gpp import PushLoss, grow_branch, kept_outputs, refit_consumers_
from netsculpt.importance import get_criterion
from netsculpt.measure import count_macs
from netsculpt.train import TrainConfig, evaluate, train

s = G.settings()["lenet_w23"]
calib_loader, test_loader = make_loaders("mnist5k", batch_size=64, augment=False, seed=1, **s.data)
calib = list(itertools.islice(calib_loader, 16))
x = calib[0][0][:1]


def loaders():
    return make_loaders("mnist5k", batch_size=64, augment=True, seed=0, **s.data)


widths = {"conv1": 2, "conv2.main": 2, "conv2.branches.0": 1}
out = {}
set_threads(1)
for seed in [int(v) for v in sys.argv[1].split(",")]:
    t = time.time()
    base = base_model(s, seed, Path("runs/bench/criteria_oneshot"))
    base_macs = count_macs(base, x)[0]
    model = grow_branch(base, x, {"conv2": "3x3:8"}, seed=0)
    loss = PushLoss(
        ["relu1", "relu2"], push_weight=0.1, cov_weight=0.1, keep={"relu1": 2, "relu2": 3}, rest_weight=1.0
    )
    tr, te = loaders()
    train(model, tr, te, TrainConfig.preset("finetune", epochs=3, seed=0), loss_fn=loss)
    model.eval()
    grown_acc = evaluate(model, test_loader)[0]
    graph = ns.trace(model, x)
    crit = get_criterion("gpp_reg")
    crit.calib_batches = len(calib)
    scores = crit.score(model, graph, calib)
    plan = widths_plan(graph, scores, widths)
    small = ns.apply_plan(model, plan, x, graph=graph)
    refit_consumers_(
        model, small, calib, kept_out=kept_outputs(graph, plan), ridge=G.REFIT_RIDGE, max_batches=None
    )
    small.eval()
    rec = {
        "grown_acc": grown_acc,
        "macs": count_macs(small, x)[0] / base_macs,
        "pruned": evaluate(small, test_loader)[0],
    }
    rec["tuned"] = train(
        small, loaders()[0], test_loader, TrainConfig.preset("finetune", epochs=3, seed=0)
    ).final_acc
    out[str(seed)] = rec
    print(f"base {seed} grown+push/gpp_reg+refit {rec} {time.time() - t:.0f}s", flush=True)
    result = {"widths": widths, "branch": {"conv2": "3x3:8"}, "push": loss.recipe(), "rows": out}
    write_json(Path("benchmarks/results/gpp_lenet_grown.json"), result)
