"""Probe: one small model per timm architecture module, traced, pruned exactly, measured, saved and loaded.

``tools/timm_sweep.py`` groups timm's names by their leading word; this probe groups them by the module
that defines the architecture (``timm.models.<module>``), so each block design is met once whatever its
models are called. Per family it takes the few smallest-sounding names, builds each on the meta device
to count parameters, and checks the smallest: ``ns.trace``, 50 % of every group pruned and compared with
the masked original (tests/coverage/_check.py), ``count_macs`` before / after, then ``ns.save`` and
``ns.load(model=)`` onto a fresh copy. Each model runs in its own subprocess with a timeout, so one hang
or crash does not end the sweep; results append as JSON lines and the table is rewritten at the end.

    PYTHONPATH=src:. python benchmarks/timm_sweep.py [--out benchmarks/results/timm_sweep_2026-12-07.txt]

Statuses: ``exact`` (pruned == masked original), ``inexact`` (no group is exactly prunable; with
``allow_inexact=True`` it prunes and runs: the reason is why exact mode pins), ``nothing prunable``
(with the engine's reason), ``WRONG`` (pruned != masked original: a netsculpt bug), ``CRASH`` (exception
type and first line; ``where`` says whether the traceback ends in netsculpt), ``skip`` (timm cannot
build or run it), ``timeout``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import torch

SMALL = [
    "_002",
    "pico",
    "atto",
    "femto",
    "nano",
    "xxs",
    "tiny",
    "xs",
    "mini",
    "small",
    "_s",
    "b0",
    "lite0",
    "_050",
    "128",
    "18",
]
CANDIDATES = 5  # names per family whose parameters are counted on the meta device
RESULTS = Path(__file__).parent / "results" / "timm_sweep_2026-12-07.txt"


def families() -> dict[str, list[str]]:
    """Architecture module -> its model names, smallest-sounding first."""
    import timm
    from timm.models import model_entrypoint

    out: dict[str, list[str]] = defaultdict(list)
    for name in timm.list_models():
        out[model_entrypoint(name).__module__.rsplit(".", 1)[-1]].append(name)

    def smallness(name: str) -> tuple[int, int, str]:
        hit = next((i for i, p in enumerate(SMALL) if p in name), len(SMALL))
        return hit, len(name), name

    return {k: sorted(v, key=smallness) for k, v in sorted(out.items())}


def _smallest(names: list[str]) -> str:
    """The candidate with the fewest parameters, counted without allocating (meta device)."""
    import timm

    sizes = {}
    for name in names[:CANDIDATES]:
        try:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False, num_classes=10)
            sizes[name] = sum(p.numel() for p in model.parameters())
        except Exception:
            continue
    return min(sizes, key=sizes.get) if sizes else names[0]


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    """64 px where the model takes it (``img_size=64`` for the ones that fix it), else its own size."""
    import timm

    last: Exception | None = None
    for options, size in (({"img_size": 64}, 64), ({}, 64), ({}, None)):
        try:
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False, num_classes=10, **options).eval()
            size = size or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
            x = torch.randn(1, 3, size, size)
            with torch.no_grad():
                model(x)
            return model, x, options
        except Exception as exc:
            last = exc
    raise last


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300]


def _in_netsculpt(tb: str) -> bool:
    """Whether the innermost netsculpt-or-timm frame of the traceback is ours."""
    files = re.findall(r'File "([^"]+)"', tb)
    ours = [f for f in files if "/netsculpt/" in f or "/timm/" in f]
    return bool(ours) and "/netsculpt/" in ours[-1]


def check_one(name: str) -> dict[str, object]:
    """Run every check on one model (in the child process)."""
    import copy

    from tests.coverage._check import TOLERANCE, _probe_like, _why, check_prunes_inexactly, make_nontrivial_

    import netsculpt as ns
    from netsculpt.measure import count_macs
    from netsculpt.surgery import mask_
    from netsculpt.surgery.verify import random_plan

    record: dict[str, object] = {"model": name}
    try:
        model, x, options = _build(name)
    except Exception as exc:
        return {**record, "status": "skip", "reason": _first_line(exc)}
    record["size"] = x.shape[-1]
    stage = "trace"
    try:
        model = make_nontrivial_(model)
        graph = ns.trace(model, x)
        record["groups"] = f"{len(graph.prunable_groups)}/{len(graph.groups)}"
        if not graph.prunable_groups:
            return {**record, **_pinned(name, options, x, graph, check_prunes_inexactly)}
        stage = "prune"
        plan = random_plan(graph, 0.5, seed=0)
        probe = _probe_like(x)
        masked = mask_(copy.deepcopy(model), graph, plan)
        pruned = ns.apply_plan(model, plan, x, graph=graph).eval()
        with torch.no_grad():
            reference, out = masked(probe), pruned(probe)
        err = float((out - reference).norm() / reference.norm().clamp_min(1e-12))
        before, after = count_macs(model, x)[0], count_macs(pruned, x)
        record.update(err=err, macs_ratio=round(after[0] / before, 3))
        if not err <= TOLERANCE:
            return {**record, "status": "WRONG", "reason": f"relative error {err:.2e}"}
        record.update(status="exact", **_why(graph, after[1], after[0] / before))
        stage = "save/load"
        _save_load(name, options, pruned, probe, ns)
    except Exception as exc:
        tb = traceback.format_exc()
        record.update(
            status="CRASH", stage=stage, reason=_first_line(exc), ours=_in_netsculpt(tb), traceback=tb[-2500:]
        )
    return record


def _pinned(name: str, options: dict, x: torch.Tensor, graph, check_inexactly) -> dict[str, object]:
    """No exactly prunable group: say why, and whether ``allow_inexact=True`` prunes it."""
    import timm

    # every model's input group is pinned ("reads network input 0"): that says nothing about the blocks
    reasons = Counter(r for g in graph.groups for r in g.reasons if "network input" not in r)
    why = "; ".join(r for r, _ in reasons.most_common(2)) or "no group"
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **options).eval()
    try:
        result = check_inexactly(model, x)
    except AssertionError as exc:
        if str(exc).startswith("nothing prunable"):
            return {"status": "nothing prunable", "reason": why}
        raise
    return {"status": "inexact", "reason": why, "macs_ratio": round(result["macs_ratio"], 3)}


def _save_load(name: str, options: dict, pruned: torch.nn.Module, x: torch.Tensor, ns) -> None:
    """The pruned model saved and replayed onto a fresh unpruned copy computes the same."""
    import timm

    torch.manual_seed(0)
    fresh = timm.create_model(name, pretrained=False, num_classes=10, **options).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ns.save(pruned, tmp)
        loaded = ns.load(tmp, model=fresh).eval()
    with torch.no_grad():
        a, b = pruned(x), loaded(x)
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
        raise AssertionError("save/load: the loaded model computes something else")


def _child(name: str) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    record = check_one(name)
    record["seconds"] = round(time.perf_counter() - start, 1)
    print("RESULT " + json.dumps(record), flush=True)


def run(family: str, names: list[str], timeout: int) -> dict[str, object]:
    """Pick the family's smallest model and check it in a subprocess."""
    start = time.perf_counter()
    try:
        name = _smallest(names)
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, timeout=timeout
        )
        line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            record = {"model": name, "status": "CRASH", "reason": f"child exited {proc.returncode}: {tail}"}
        else:
            record = json.loads(line[len("RESULT ") :])
    except subprocess.TimeoutExpired:
        record = {"model": name, "status": "timeout", "reason": f"over {timeout} s"}
    record["family"] = family.split("/")[0]
    record.setdefault("seconds", round(time.perf_counter() - start, 1))
    return record


def table(records: list[dict]) -> str:
    rows = [f"{'family':<26} {'model':<36} {'groups':>7} {'MACs':>5} {'s':>5}  status"]
    for r in sorted(records, key=lambda r: r["family"]):
        ratio = f"{r['macs_ratio']:.2f}" if "macs_ratio" in r else "-"
        status = r["status"] + (f" ({r['reason']})" if r.get("reason") else "")
        rows.append(
            f"{r['family']:<26} {r['model']:<36} {r.get('groups', '-'):>7} {ratio:>5} {r['seconds']:>5}  "
            + status[:160]
        )
        rows.extend(f"{'':<27}why: {why}"[:260] for why in r.get("why", [])[:1])  # above 0.7x MACs
    counts = Counter(r["status"] for r in records)
    rows.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=int, default=180, help="seconds per model, build to load")
    parser.add_argument("--only", nargs="*", help="architecture modules to run (default: all)")
    parser.add_argument("--shard", default="0/1", help="I/N: every Nth family from the Ith (parallel runs)")
    parser.add_argument("--models", nargs="*", help="check these models instead (other variants of a family)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _child(args.one)
        return 0
    import timm

    jsonl = args.out.with_suffix(".jsonl")
    done = [json.loads(s) for s in jsonl.read_text().splitlines()] if jsonl.exists() else []
    seen = {r["family"] if not args.models else f"{r['family']}/{r['model']}" for r in done}
    fams = families()
    if args.models:  # each model on its own, under its family's name
        from timm.models import model_entrypoint

        fams = {f"{model_entrypoint(m).__module__.rsplit('.', 1)[-1]}/{m}": [m] for m in args.models}
    print(f"timm {timm.__version__}: {len(fams)} architecture modules, {len(seen)} done", flush=True)
    shard, shards = map(int, args.shard.split("/"))
    for i, (family, names) in enumerate(fams.items()):
        if i % shards != shard or family in seen or (args.only and family not in args.only):
            continue
        record = run(family, names, args.timeout)
        done.append(record)
        with jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{family:<22} {record['model']:<36} {record['status']} {record.get('reason', '')}"[:220])
        args.out.write_text(table(done) + "\n")
    args.out.write_text(table(done) + "\n")
    print(table(done))
    return 1 if any(r["status"] in ("CRASH", "WRONG") for r in done) else 0


if __name__ == "__main__":
    sys.exit(main())
