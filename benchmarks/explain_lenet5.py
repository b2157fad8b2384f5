"""Interpretation maps of the `make demo` model before and after compression, measured on 500 test digits.

Runs (or resumes) the default recipe (LeNet-5 on mnist5k, HRel to 0.15x MACs, distillation) into a run
folder, then explains its baseline and final model with the same settings as ``netsculpt explain``:
CHIP class importance learnt on training digits (network perturbation + non-negative Lasso), Grad-CAM
and CHIP maps after each conv's activation, on the first 500 test digits. Printed side by side:

* the deletion test at 5 / 10 / 20 % of the pixels (drop of the class probability when a map's top
  pixels are hidden), and its ratio over random maps hiding as many pixels: is the map faithful?
* the cosine similarity of the baseline's and the compressed model's maps: does the smaller model
  still look at the same place?
* the share of each map on the digit's stroke (the bright half of the image);
* the share of the baseline's learnt class importance on channels the pruning removed, and CHIP
  channel independence of kept vs removed channels.

    PYTHONPATH=src python benchmarks/explain_lenet5.py [--run runs/explain_bench] [--images 500]
    PYTHONPATH=src python benchmarks/explain_lenet5.py --recipe examples/resnet56_mnist5k_chip.yaml \
        --set model.name=resnet20_cifar --set baseline.train.epochs=4 --set stages.1.distill.epochs=2 \
        --set outputs.latency_runs=5 --run runs/explain_r20 --masks 64 --images 200 --tag explain_resnet20

Results: benchmarks/results/explain_lenet5.json (numbers) and .log (this table).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _calibration import print_calibration
from _compress import run_compress

from netsculpt.explain.chip_maps import Perturbation
from netsculpt.explain.faithfulness import deletion_drop, random_drop
from netsculpt.explain.job import Settings, bright_mass, default_layers, explain
from netsculpt.explain.sources import from_run

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.05, 0.1, 0.2)


def ensure_run(run: Path, recipe: str | None, overrides: list[str]) -> None:
    if (run / "results.json").is_file():
        return
    run_compress(run, recipe, ["compare_random=false", *overrides])


def take(loader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        if sum(len(t) for t in ys) >= n:
            break
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/explain_bench")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--calib-images", type=int, default=320)
    p.add_argument("--masks", type=int, default=256, help="CHIP masks per class and layer")
    p.add_argument(
        "--recipe", default=None, help="recipe to run when --run has no results yet (default: demo)"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override")
    p.add_argument("--tag", default="explain_lenet5", help="results file name under benchmarks/results")
    p.add_argument("--table", action="store_true", help="reprint the table from the saved JSON and exit")
    args = p.parse_args()
    if args.table:
        write_table(args.tag)
        return
    torch.set_num_threads(1)
    run = Path(args.run)
    print_calibration("start")
    ensure_run(run, args.recipe, args.overrides)
    from netsculpt.data import make_loaders

    src = from_run(run, default_layers)
    d = src.data
    train, test = make_loaders(
        d["name"],
        batch_size=64,
        root=d["root"],
        resize=d["resize"],
        channels=d["channels"],
        seed=0,
        **d["options"],
    )
    images, labels = take(test, args.images)
    calib = take(train, args.calib_images)
    t0 = time.perf_counter()
    exp = explain(
        src.models,
        images,
        labels,
        calib,
        Settings(perturbation=Perturbation(masks=args.masks)),
        kept=src.kept,
    )
    seconds = time.perf_counter() - t0
    rows = {}
    for mm in exp.models:
        model = src.models[mm.name]
        maps = {f"gradcam:{k}": v for k, v in mm.gradcam.items()} | {
            f"chip:{k}": v for k, v in mm.chip.items()
        }
        if mm.refined is not None:
            maps["refined"] = mm.refined
        random = {f: random_drop(model, images, mm.classes, f) for f in FRACTIONS}
        for key, m in maps.items():
            drops = {f: deletion_drop(model, images, mm.classes, m, f) for f in FRACTIONS}
            rows[(mm.name, key)] = {
                "deletion": {str(f): drops[f] for f in FRACTIONS},
                "ratio_over_random": {str(f): drops[f] / max(random[f], 1e-12) for f in FRACTIONS},
                "bright_mass": float(np.mean(bright_mass(m, images))),
            }
        rows[(mm.name, "random")] = {"deletion": {str(f): random[f] for f in FRACTIONS}}
        acc = float((mm.predicted == labels).double().mean())
        rows[(mm.name, "accuracy")] = {"accuracy_on_these_images": acc}
    calibration = print_calibration("end")
    gray = images.mean(1)
    lo, hi = gray.flatten(1).amin(1), gray.flatten(1).amax(1)
    base = exp.numbers["models"]["baseline"]["layers"]
    out = {
        "run": str(run),
        "images": args.images,
        "calib_images": args.calib_images,
        "masks": args.masks,
        "rows": [{"model": m, "map": k, **r} for (m, k), r in rows.items()],
        "layers": exp.layers,
        "similarity_mean": exp.numbers.get("similarity_mean"),
        "channels": {
            layer: {
                "independence_summary": base[layer]["independence_summary"],
                "importance_removed_share": base[layer].get("importance_removed_share"),
                "kept": exp.numbers["kept"].get(layer),
            }
            for layer in exp.layers
        },
        "perturbation": exp.numbers["perturbation"],
        "seconds": seconds,
        "stroke_area": float((gray > ((lo + hi) / 2)[:, None, None]).double().mean()),
        "calibration": calibration.to_dict(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(out, indent=1))
    write_table(args.tag)


def table(out: dict) -> str:
    """The side-by-side table of a saved result."""
    width = max(16, *(len(r["map"]) + 2 for r in out["rows"]))
    lines = [
        f"run {out.get('run', '?')}: {out.get('images', '?')} test images, {out.get('calib_images', '?')} "
        f"training images and {out.get('masks', '?')} masks per class and layer for CHIP"
    ]
    head = f"{'model':<11}{'map':<{width}}" + "".join(f"del@{f:<5}" for f in FRACTIONS)
    lines.append(head + "x random@10%  on stroke")
    for r in out["rows"]:
        if "deletion" not in r:
            lines.append(f"{r['model']:<11}accuracy on the images {r['accuracy_on_these_images']:.2%}")
            continue
        cells = "".join(f"{r['deletion'][str(f)]:<9.3f}" for f in FRACTIONS)
        ratio = r.get("ratio_over_random", {}).get("0.1")
        extra = f"{ratio:<13.2f}{r['bright_mass']:.1%}" if ratio is not None else ""
        lines.append(f"{r['model']:<11}{r['map']:<{width}}{cells}{extra}")
    lines.append(
        f"the stroke (bright half) covers {out['stroke_area']:.1%} of the pixels: "
        "a map spread evenly scores that"
    )
    sim = out.get("similarity_mean") or {}
    lines.append(
        "map similarity baseline vs compressed (cosine, mean): "
        + ", ".join(f"{k} {v:.3f}" for k, v in sim.items())
    )
    for layer, c in out["channels"].items():
        s = c["independence_summary"]
        share = np.mean(list((c.get("importance_removed_share") or {"-": float("nan")}).values()))
        lines.append(
            f"{layer}: kept {s.get('kept')}/{s['channels']}; CHIP independence kept "
            f"{s.get('mean_kept') or float('nan'):.3g} vs removed "
            f"{s.get('mean_removed') or float('nan'):.3g}; "
            f"baseline class importance on removed channels {share:.1%} (mean over classes)"
        )
    cal = out.get("calibration") or {}
    lines.append(
        f"explain wall time {out['seconds']:.1f} s for two models; CPU calibration "
        f"{cal.get('matmul_gflops', float('nan')):.1f} GFLOP/s matmul"
    )
    return "\n".join(lines)


def write_table(tag: str) -> None:
    out = json.loads((RESULTS / f"{tag}.json").read_text())
    text = table(out)
    print(text)
    (RESULTS / f"{tag}.log").write_text(text + "\n")


if __name__ == "__main__":
    main()
