"""Sweep one small model per timm family through the exactness check (tests/coverage/_check.py).

The unit tests cover every torchvision classifier and a hand-picked set of timm designs; this sweep is
how new block designs are found: it builds one model per family (the smallest-sounding name), prunes
half of every prunable group and compares the pruned model with the masked original. Results append
to a JSON-lines file, so an interrupted sweep resumes where it stopped.

    PYTHONPATH=src:. python tools/timm_sweep.py [--out runs/timm_sweep.jsonl] [--timeout 240] [--inexact]

``--inexact`` prunes with ``allow_inexact=True`` instead (normalised and attention channels open, so the
function changes) and checks that the pruned model runs, keeps its output shape and shrinks.

At the end it prints the MACs ratio (after / before) each family reaches at 50 % per group and, for
every family above 0.7x, the engine's reason for its costliest pinned layers
(``netsculpt.graph.explain.pinned_macs``): a high ratio is never left unexplained.

Statuses: ok (exact), pinned (no group is exactly prunable, e.g. every channel passes a LayerNorm;
``allow_inexact=True`` opens them), fail (pruning broke: a netsculpt bug), skip (timm cannot build or
run the model at this size: not ours), timeout. Exits 1 if any model failed.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
import traceback
from pathlib import Path

import timm
import torch
from tests.coverage._check import check_prunes_exactly, check_prunes_inexactly

HIGH = 0.7  # MACs ratio above which the sweep prints why the engine kept the cost

PREFERRED = ["pico", "nano", "tiny", "xxs", "xs", "small", "s12", "_050", "18", "_s", "mini", "lite0", "b0"]


def family_representatives() -> list[str]:
    families: dict[str, list[str]] = {}
    for name in timm.list_models():
        families.setdefault(re.match(r"[a-z]+", name).group(0), []).append(name)

    def smallness(name: str) -> tuple[int, int]:
        hit = next((i for i, p in enumerate(PREFERRED) if p in name), len(PREFERRED))
        return hit, len(name)

    return sorted(min(names, key=smallness) for names in families.values())


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout


def _build_and_run(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """64 px keeps the sweep fast; a model that cannot run at 64 px is checked at its default size."""
    for options in ({"img_size": 64}, {}):
        try:
            return _run(name, options, 64)
        except Exception:
            continue
    return _run(name, {}, None)


def _run(name: str, options: dict, size: int | None) -> tuple[torch.nn.Module, torch.Tensor]:
    model = timm.create_model(name, pretrained=False, num_classes=10, **options).eval()
    size = size or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        model(x)
    return model, x


def check_one(name: str, timeout: int, inexact: bool = False) -> dict[str, object]:
    record: dict[str, object] = {"name": name}
    stage = "build"
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        model, x = _build_and_run(name)
        stage = "prune"
        check = check_prunes_inexactly if inexact else check_prunes_exactly
        record.update(status="ok", **check(model, x))
    except _Timeout:
        record.update(status="timeout", stage=stage)
    except Exception as exc:
        if isinstance(exc, AssertionError) and str(exc).startswith("nothing prunable"):
            why = str(exc).splitlines()[1:4]
            record.update(status="pinned", macs_ratio=1.0, error=why[0][:400], why=why)
            return record
        record.update(
            status="fail" if stage == "prune" else "skip", error=f"{type(exc).__name__}: {exc}"[:400]
        )
        if stage == "prune":
            record["traceback"] = traceback.format_exc()[-2000:]
    finally:
        signal.alarm(0)
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/timm_sweep.jsonl")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--inexact",
        action="store_true",
        help="prune with allow_inexact=True and check the model still runs and shrinks",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
    names = family_representatives()
    print(f"timm {timm.__version__}: {len(names)} families, {len(done)} already in {out}", flush=True)
    with out.open("a") as f:
        for i, name in enumerate(n for n in names if n not in done):
            record = check_one(name, args.timeout, args.inexact)
            f.write(json.dumps(record) + "\n")
            f.flush()
            ratio = f" {record['macs_ratio']:.2f}x MACs" if "macs_ratio" in record else ""
            status = f"{record['status']}{ratio} {record.get('error', '')}"
            print(f"[{len(done) + i + 1}/{len(names)}] {name}: {status}"[:200])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "pinned", "fail", "skip", "timeout")}
    print_ratios(records, args.inexact)
    print(" ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if counts["fail"] else 0


def print_ratios(records: list[dict], inexact: bool = False) -> None:
    """MACs after / before at 50% per group, per family, and the engine's reason above ``HIGH``.

    A family with no prunable group keeps all its MACs (1.00x); its reason is the first pinned group's.
    """
    rows = [r for r in records if r["status"] in ("ok", "pinned")]
    print(
        f"MACs ratio at 50% per group ({'inexact' if any('err' not in r for r in rows) else 'exact'} mode):"
    )
    for r in sorted(rows, key=lambda r: r.get("macs_ratio", 1.0)):
        ratio = r.get("macs_ratio", 1.0)
        print(f"  {r['name']:<40} {ratio:.2f}x")
        if ratio > HIGH:
            for why in r.get("why") or [r.get("error", "no reason recorded (rerun this family)")]:
                print(f"      why: {why}"[:300])
    high = sum(r.get("macs_ratio", 1.0) > HIGH for r in rows)
    print(f"{high} of {len(rows)} families above {HIGH}x, each with the engine's reason above")


if __name__ == "__main__":
    sys.exit(main())
