"""Probe: one tiny model per Hugging Face ``model_type``, traced, pruned exactly, measured, saved, loaded.

benchmarks/timm_sweep.py does this for timm. Here every model type with a model class
(``transformers.models.auto.modeling_auto``) is built from its default config shrunk generically
(benchmarks/_hf_build.py: width 32, 2 layers, 2 heads, vocabulary 128, 32 px images) as its
sequence- / image-classification, segmentation, detection, causal-LM or audio-classification class,
else ``AutoModel``, and fed inputs for its modality (token ids, pixels, waveforms, audio features, plus
decoder ids for encoder-decoders) as ``forward``'s positional arguments. Then: ``ns.trace``, 50 % of
every group pruned and compared with the masked original on the output's first tensor (the logits),
``count_macs`` before / after, ``ns.save`` and ``ns.load(model=fresh)``.

Each model runs in a forked child with a timeout (the parent imports torch, transformers and netsculpt
once), so a hang or a crash does not end the sweep; results append as JSON lines, models already in the
JSON lines file are skipped (resumable), and the table is rewritten after every model.

    PYTHONPATH=src:. python benchmarks/hf_sweep.py [--out benchmarks/results/hf_sweep_2026-12-07.txt]

Statuses as in the timm sweep: ``exact``, ``inexact`` (nothing exactly prunable; with
``allow_inexact=True`` it prunes and runs), ``nothing prunable`` (with the engine's reason), ``WRONG``
(pruned != masked original), ``CRASH`` (``where``: the innermost netsculpt frame), ``skip``
(transformers cannot build or run the tiny config), ``timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import multiprocessing
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _hf_build import VARIANTS, build, first_tensor, inputs, model_types

RESULTS = Path(__file__).parent / "results" / "hf_sweep_2026-12-07.txt"


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300]


def _where(tb: str) -> tuple[bool, str]:
    """Whether the innermost netsculpt-or-transformers frame is ours, and the innermost netsculpt frame."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', tb)
    ours = [f for f in frames if "/src/netsculpt/" in f[0] or "/transformers/" in f[0]]
    inner = [f for f in frames if "/src/netsculpt/" in f[0]]
    where = f"{inner[-1][0].split('/src/netsculpt/')[-1]}:{inner[-1][1]} {inner[-1][2]}" if inner else "-"
    return bool(ours) and "/src/netsculpt/" in ours[-1][0], where


def _probe(args: tuple) -> tuple:
    """Second inputs like the first: ids stay ids in their range and keep the last token (the </s> an
    encoder-decoder's sequence classifier pools at), None stays None."""
    from tests.coverage._check import _probe_like

    out = []
    for a in args:
        p = _probe_like(a) if isinstance(a, torch.Tensor) else a
        if isinstance(a, torch.Tensor) and not a.is_floating_point() and a.dim() == 2:
            g = torch.Generator().manual_seed(1)  # ids above the special tokens, as the example's
            p = torch.randint(3, int(a.max()) + 1, a.shape, generator=g, dtype=a.dtype)
            p[:, -1] = a[:, -1]
        out.append(p)
    return tuple(out)


def _run(model: torch.nn.Module, args: tuple) -> torch.Tensor:
    torch.manual_seed(0)  # some forwards draw noise (ViTMAE's random masking): the same draws every call
    with torch.no_grad():
        return first_tensor(model(*args))


def check_one(mtype: str, task: str, cls: str) -> dict[str, object]:
    """Every check on one model type (in the child process)."""
    from tests.coverage._check import TOLERANCE, _why, make_nontrivial_

    import netsculpt as ns
    from netsculpt.measure import count_macs
    from netsculpt.surgery import mask_
    from netsculpt.surgery.verify import random_plan

    record: dict[str, object] = {"model": mtype, "task": task, "class": cls}
    failed = None
    for variant in range(len(VARIANTS)):
        try:
            model = make_nontrivial_(build(mtype, cls, variant))
            args, given = inputs(model)
            if _run(model, args) is None:
                raise ValueError("the output holds no tensor")
            break
        except Exception as exc:
            failed = failed or exc
    else:
        return {**record, "status": "skip", "reason": _first_line(failed)}
    record["variant"] = variant
    record["inputs"] = sorted(given)
    record["params"] = sum(p.numel() for p in model.parameters())
    stage = "trace"
    try:
        graph = ns.trace(model, args)
        record["groups"] = f"{len(graph.prunable_groups)}/{len(graph.groups)}"
        if not graph.prunable_groups:
            return {**record, **_pinned(mtype, cls, variant, args, graph)}
        stage = "prune"
        plan = random_plan(graph, 0.5, seed=0)
        probe = _probe(args)
        masked = mask_(copy.deepcopy(model), graph, plan)
        pruned = ns.apply_plan(model, plan, args, graph=graph).eval()
        reference, out = _run(masked, probe), _run(pruned, probe)
        if out.shape != reference.shape:
            return {
                **record,
                "status": "WRONG",
                "reason": f"shape {tuple(out.shape)} != {tuple(reference.shape)}",
            }
        err = float((out - reference).norm() / reference.norm().clamp_min(1e-12))
        stage = "macs"
        before, after = count_macs(model, args)[0], count_macs(pruned, args)
        record.update(err=err, macs_ratio=round(after[0] / max(before, 1), 3))
        if not err <= TOLERANCE:
            return {**record, "status": "WRONG", "reason": f"relative error {err:.2e}"}
        record.update(status="exact", **_why(graph, after[1], after[0] / max(before, 1)))
        stage = "save/load"
        _save_load(mtype, cls, variant, pruned, probe, ns)
    except Exception as exc:
        tb = traceback.format_exc()
        ours, where = _where(tb)
        record.update(status="CRASH", stage=stage, reason=_first_line(exc), ours=ours, where=where)
        record["traceback"] = tb[-3000:]
    return record


def _pinned(mtype: str, cls: str, variant: int, args: tuple, graph) -> dict[str, object]:
    """No exactly prunable group: say why, and whether ``allow_inexact=True`` prunes it."""
    from tests.coverage._check import make_nontrivial_

    import netsculpt as ns
    from netsculpt.surgery.verify import random_plan

    reasons = Counter(r for g in graph.groups for r in g.reasons if "network input" not in r)
    why = "; ".join(r for r, _ in reasons.most_common(2)) or "no group"
    model = make_nontrivial_(build(mtype, cls, variant))
    loose = ns.trace(model, args, allow_inexact=True)
    plan = random_plan(loose, 0.5, seed=0)
    if not plan.keep:
        return {"status": "nothing prunable", "reason": why}
    reference = _run(model, args)
    pruned = ns.apply_plan(model, plan, args, graph=loose)
    out = _run(pruned, args)
    if out.shape != reference.shape or not torch.isfinite(out).all():
        return {
            "status": "WRONG",
            "reason": f"inexact: shape {tuple(out.shape)} or not finite; pinned: {why}",
        }
    return {"status": "inexact", "reason": why}


def _save_load(mtype: str, cls: str, variant: int, pruned: torch.nn.Module, args: tuple, ns) -> None:
    """The pruned model saved and replayed onto a fresh unpruned copy computes the same."""
    fresh = build(mtype, cls, variant)
    with tempfile.TemporaryDirectory() as tmp:
        ns.save(pruned, tmp)
        loaded = ns.load(tmp, model=fresh).eval()
    a, b = _run(pruned, args), _run(loaded, args)
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
        raise AssertionError("save/load: the loaded model computes something else")


def _child(conn, mtype: str, task: str, cls: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    start = time.perf_counter()
    record = check_one(mtype, task, cls)
    record["seconds"] = round(time.perf_counter() - start, 1)
    conn.send(record)
    conn.close()


def run(mtype: str, task: str, cls: str, timeout: int) -> dict[str, object]:
    """Check one model type in a forked child; a hang is a timeout, a dead child a CRASH."""
    start = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, mtype, task, cls), daemon=True)
    proc.start()
    child.close()
    record = None
    if parent.poll(timeout):
        with contextlib.suppress(EOFError):  # the child died after closing the pipe
            record = parent.recv()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if record is None:
        if time.perf_counter() - start >= timeout:
            record = {
                "model": mtype,
                "task": task,
                "class": cls,
                "status": "timeout",
                "reason": f"over {timeout} s",
            }
        else:
            reason = f"child exited {proc.exitcode}"
            record = {"model": mtype, "task": task, "class": cls, "status": "CRASH", "reason": reason}
    record.setdefault("seconds", round(time.perf_counter() - start, 1))
    return record


def _cause(r: dict) -> str:
    """The failure cause a row is grouped by: the netsculpt frame and error, or the pin reason."""
    if r["status"] in ("CRASH", "WRONG"):
        reason = re.sub(r"'/tmp/[^']*'", "DIR", r.get("reason", ""))
        return f"{r.get('where', '-')}: {re.sub(r'[0-9]+', 'N', reason)[:110]}"
    return re.sub(r"`[^`]*`", "`X`", r.get("reason", ""))[:140]


def table(records: list[dict]) -> str:
    counts = Counter(r["status"] for r in records)
    head = [
        f"Hugging Face sweep: {len(records)} model types; "
        + ", ".join(f"{k} {v}" for k, v in counts.most_common())
    ]
    for status in ("WRONG", "CRASH", "nothing prunable", "inexact", "timeout", "skip"):
        causes = Counter(_cause(r) for r in records if r["status"] == status)
        for cause, n in causes.most_common(12 if status != "skip" else 6):
            examples = [r["model"] for r in records if r["status"] == status and _cause(r) == cause][:4]
            head.append(f"  {status:<16} {n:>3}  {cause}  [{', '.join(examples)}]"[:300])
    rows = [f"{'model_type':<30} {'task':<9} {'groups':>7} {'MACs':>5} {'s':>5}  status"]
    for r in sorted(records, key=lambda r: r["model"]):
        ratio = f"{r['macs_ratio']:.2f}" if "macs_ratio" in r else "-"
        status = r["status"] + (f" ({r['reason']})" if r.get("reason") else "")
        if r.get("where", "-") != "-":
            status += f" at {r['where']}"
        groups = r.get("groups", "-")
        rows.append(
            f"{r['model']:<30} {r.get('task', '-'):<9} {groups:>7} {ratio:>5} {r['seconds']:>5}  {status}"[
                :260
            ]
        )
    return "\n".join([*head, "", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per model type, build to load")
    parser.add_argument("--only", nargs="*", help="model types to run (default: all)")
    parser.add_argument("--redo", action="store_true", help="run --only types again, replacing their rows")
    args = parser.parse_args(argv)
    import tests.coverage._check  # noqa: F401
    import transformers

    import netsculpt  # noqa: F401  (imported once, before forking)

    jsonl = args.out.with_suffix(".jsonl")
    done = [json.loads(s) for s in jsonl.read_text().splitlines()] if jsonl.exists() else []
    if args.redo and args.only:
        done = [r for r in done if r["model"] not in args.only]
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in done))
    seen = {r["model"] for r in done}
    types = model_types()
    print(f"transformers {transformers.__version__}: {len(types)} model types, {len(seen)} done", flush=True)
    for mtype, task, cls in types:
        if mtype in seen or (args.only and mtype not in args.only):
            continue
        record = run(mtype, task, cls, args.timeout)
        done.append(record)
        with jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"{mtype:<28} {record['status']} {record.get('reason', '')} {record.get('where', '')}"[:220],
            flush=True,
        )
        args.out.write_text(table(done) + "\n")
    args.out.write_text(table(done) + "\n")
    return 1 if any(r["status"] in ("CRASH", "WRONG") for r in done) else 0


if __name__ == "__main__":
    sys.exit(main())
