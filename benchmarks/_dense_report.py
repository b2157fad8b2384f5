"""``--part report`` of ``benchmarks/detection.py``: the cached JSON of every part, as one text table.

Drops are in points (x100) of the headline metric, test canvases, the unpruned model minus the pruned
one after fine-tuning; the bar (issue 14 section 6) is a drop <= 1.0 point for the better of fisher and
l1. Latency ratios are unpruned time / pruned time, printed beside the MACs ratio.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from _dense_longer import longer6_report
from _tables import bar, table

NAMES = {"fisher": "netsculpt fisher", "l1": "netsculpt l1", "tp": "Torch-Pruning 1.6.1 l1 (uniform)"}
TITLES = {
    "det": ("FCOS (slim conv backbone, 64-ch FPN P3-P7) on digits_detect", "map", "mAP@[.5:.95]"),
    "seg": ("LR-ASPP MobileNetV3-Small w0.5 on digits_seg at 64 px", "miou", "mIoU"),
}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _quality(kind: str, cache: Path, record: dict) -> None:
    title, metric, label = TITLES[kind]
    base, prune = _load(cache / f"{kind}_base.json"), _load(cache / f"{kind}_prune.json")
    if base is None:
        print(f"\n{kind}: no trained model in the cache (run --part train-{kind})")
        return
    ref = base["metrics"][metric]
    print(
        f"\n{title}: trained {base['epochs']} epochs, test {label} {ref:.4f} "
        f"({', '.join(f'{k} {v:.4f}' for k, v in base['metrics'].items())})"
    )
    if "val_curve" in base:  # the segmenter: lr picked on held-out training canvases, curve per epoch
        curve = ", ".join(f"{e}: {v:.3f}" for e, v in base["val_curve"].items())
        print(
            f"  peak lr {base['lr']:g} chosen on the held-out training canvases (final val {label} by lr: "
            f"{base['val_final_by_lr']}); val {label} by epoch: {curve}"
        )
    record[kind] = {"base": base, "prune": prune}
    if prune is None:
        print(f"  pruning rows not run yet (--part prune-{kind})")
        return
    print(
        f"  fine-tune: {prune['rows']['l1'].get('finetune_s', '?')} s per row; peak lr chosen on "
        f"held-out training canvases (l1 row): {prune['chosen_lr']:g} (val {label} {prune['lr_trials']})"
    )
    rows, drops = [], {}
    for method, row in prune["rows"].items():
        if "error" in row:
            print(f"  {NAMES[method]}: FAILED to prune: {row['error']}")
            drops[method] = float("inf")
            continue
        after = row["test_after"][metric]
        drops[method] = 100 * (ref - after)
        rows.append(
            (
                NAMES[method],
                f"{row['macs_ratio']:.3f}",
                f"{row['params']:,}",
                f"{row['test_before'][metric]:.4f}",
                f"{after:.4f}",
                f"{drops[method]:+.2f}",
                f"{row['val_after'][metric]:.4f}",
            )
        )
    header = (
        "pruned to <= 0.5x MACs",
        "MACs",
        "params",
        "test before ft",
        "test after ft",
        "drop (pt)",
        "val after",
    )
    table(f"{kind}: test {label} (unpruned {ref:.4f}), same fine-tune for every row", header, rows)
    tp = prune["rows"].get("tp", {})
    if "tp_uniform_ratio" in tp:
        _tp_notes(kind, tp)
    control = _control(kind, cache, label, ref, record)
    _longer(kind, cache, label, ref, prune["chosen_lr"], record)
    best = min(("fisher", "l1"), key=lambda m: drops[m])
    if control is not None:
        gap = 100 * control - (100 * ref - drops[best])
        print(f"  against that control the better netsculpt row ({best}) is {gap:.2f} points lower")
    print(
        "  "
        + bar(
            drops[best] <= 1.0,
            f"{kind}: better netsculpt row ({best}) drops {drops[best]:.2f} points of {label} (bar <= 1.0)",
        )
    )
    longer6_report(kind, cache, label, metric, ref, record)


def _longer(kind: str, cache: Path, label: str, ref: float, lr: float, record: dict) -> None:
    row = _load(cache / f"{kind}_l1_lr{lr:g}_x3.json")
    if row is None or "test_after" not in row:
        return
    after = row["test_after"][TITLES[kind][1]]
    record[kind]["l1_x3"] = row
    print(
        f"  outside the equal-budget table: l1 with 3x the fine-tune ({row['finetune_s']} s) reaches "
        f"test {label} {after:.4f} (drop {100 * (ref - after):.2f} points)"
    )


def _control(kind: str, cache: Path, label: str, ref: float, record: dict) -> float | None:
    lr = (_load(cache / f"{kind}_prune.json") or {}).get("chosen_lr")
    row = _load(cache / f"{kind}_none_lr{lr:g}.json") if lr is not None else None
    if row is None or "test_after" not in row:
        print(f"  control (unpruned + the same fine-tune) not run yet (--part control-{kind})")
        return None
    after = row["test_after"][TITLES[kind][1]]
    record[kind]["control"] = row
    print(
        f"  control: the UNPRUNED model given the same fine-tune reaches test {label} {after:.4f} "
        f"({100 * (after - ref):+.2f} points against the unpruned model)"
    )
    return after


def _tp_notes(kind: str, tp: dict) -> None:
    miss = tp["macs_ratio"] > 0.5
    reach = f" (MISSES the 0.5x budget: ratio 0.9 reaches {tp.get('tp_macs_at_0.9')}x)" if miss else ""
    print(
        f"  Torch-Pruning: uniform pruning_ratio {tp['tp_uniform_ratio']}, {tp['macs_ratio']:.3f}x MACs"
        + reach
    )
    ignored = (
        "the whole FCOS head (as TP's SSD example does)"
        if kind == "det"
        else "the two LR-ASPP classifier convs (TP's example leaves them: output classes would be cut)"
    )
    print(
        "  Torch-Pruning workarounds: "
        + (
            "list-of-images example input, BatchNorm not FrozenBatchNorm2d (TP's example), "
            if kind == "det"
            else ""
        )
        + f"ignored_layers = {ignored}"
    )
    if tp.get("tp_documented_failure"):
        print(
            "  with only FCOS's output convs ignored (TP's torchvision example) the pruned model fails: "
            f"GroupNorm(32, 64) towers become GroupNorm(32, 32) and fail on the 1x1 P7 map: "
            f"{tp['tp_documented_failure'][:160]}"
        )


def _latency(kind: str, cache: Path, record: dict) -> None:
    lat = _load(cache / f"{kind}_latency.json")
    if lat is None:
        print(f"\n{kind}: latency not measured yet (--part latency-{kind})")
        return
    record.setdefault(kind, {})["latency"] = lat
    columns = list(lat["ms"])
    header = ("model", "MACs", *[f"{c} ms" for c in columns], *[f"{c} speed-up" for c in columns])
    rows = []
    for name, macs in lat["macs_ratio"].items():
        ms = [lat["ms"][c][name] for c in columns]
        ups = [lat["ms"][c]["unpruned"] / lat["ms"][c][name] for c in columns]
        rows.append(
            (NAMES.get(name, name), f"{macs:.3f}", *[f"{v:.2f}" for v in ms], *[f"{u:.2f}x" for u in ups])
        )
    table(f"{kind}: batch 1, one thread, thread CPU time (median of alternating rounds)", header, rows)
    if kind == "det":
        print(
            "  torch / onnxruntime: FCOS's network (backbone, FPN, head) on a 1x1x128x128 tensor; "
            "torch whole: "
            "the full torchvision FCOS (transform, network, box decoding, NMS), which does not export to ONNX"
        )
    for line in lat["calibration"]:
        print(f"  calibration: {line}")


def report(cache: Path, out: Path) -> None:
    record: dict = {}
    text = io.StringIO()
    with redirect_stdout(text):
        print("# benchmarks/detection.py (issue 14 section 6); one torch thread per part")
        print(
            "# PYTHONPATH=src:benchmarks python benchmarks/detection.py --part "
            "train|prune|control|longer|longer6|kd6|latency-det|seg, report --cache DIR"
        )
        for kind in ("det", "seg"):
            _quality(kind, cache, record)
        for kind in ("det", "seg"):
            _latency(kind, cache, record)
    print(text.getvalue(), end="")
    for suffix, body in ((".txt", text.getvalue()), (".json", json.dumps(record, indent=1))):
        path = out.with_suffix(suffix)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.replace(path)
