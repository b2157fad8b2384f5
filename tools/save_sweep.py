"""Save and load torchvision / timm models the way a user holds them: built by the library, not by netsculpt.

Each model is built with the library's own call (``torchvision.models.get_model(name, weights=None,
num_classes=10)``, ``timm.create_model(name, pretrained=False, num_classes=10)``), pruned by half with
``ns.prune``, saved with ``ns.save`` (no ``builder=``) and loaded with ``ns.load`` (no consent given).
Statuses: ``rebuilt`` (the base was identified and the loaded model equals the saved one), ``needs-model``
(saved as the user's class: loading needs ``model=``; then checked with ``model=``), ``fail``, ``skip``
(the library cannot build or run it at this size, or it is above ``--max-params``). Results append to a
JSON-lines file, so an interrupted sweep resumes.

    PYTHONPATH=src:. python tools/save_sweep.py --source torchvision [--out runs/save_sweep_tv.jsonl]
    PYTHONPATH=src:. python tools/save_sweep.py --source timm
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError


def _names(source: str) -> list[str]:
    if source == "torchvision":
        from netsculpt.models.external import torchvision_names

        return torchvision_names()
    sys.path.insert(0, str(Path(__file__).parent))
    from timm_sweep import family_representatives

    return family_representatives()


def _build(source: str, name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    if source == "torchvision":
        import torchvision

        from netsculpt.models.external import torchvision_sample_shape

        kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        model = torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs)
        shape = torchvision_sample_shape(name)
        return model.eval(), torch.randn(1, *shape)
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    size = tuple(model.pretrained_cfg.get("input_size") or (3, 224, 224))
    return model, torch.randn(1, *size)


def check_one(source: str, name: str, max_params: int) -> dict[str, object]:
    started = time.perf_counter()
    try:
        torch.manual_seed(0)
        model, x = _build(source, name)
        if sum(p.numel() for p in model.parameters()) > max_params:
            return {"name": name, "status": "skip", "reason": f"more than {max_params:,} parameters"}
        with torch.no_grad():
            model(x)
    except Exception as exc:
        return {"name": name, "status": "skip", "reason": f"{type(exc).__name__}: {str(exc)[:120]}"}
    try:
        try:
            small = ns.prune(model, x, ratio=0.5).eval()
        except ns.NetsculptError as exc:  # every group pinned (LayerNorm, ...): save the unpruned model
            if "nothing can be pruned" not in str(exc):
                raise
            small = model
        with tempfile.TemporaryDirectory() as tmp:
            ns.save(small, tmp)
            base = json.loads((Path(tmp) / "netsculpt.json").read_text())["base"]
            try:
                loaded, status = ns.load(tmp), "rebuilt"
            except CheckpointError:
                if base["kind"] != "user":
                    raise
                loaded, status = ns.load(tmp, model=model), "needs-model"
            with torch.no_grad():
                same = torch.equal(loaded(x), small(x))
        record = {"name": name, "status": status if same else "fail", "base": base.get("name", base["kind"])}
        if not same:
            record["reason"] = "the loaded model computes something else"
    except Exception as exc:
        record = {
            "name": name,
            "status": "fail",
            "reason": traceback.format_exception_only(exc)[-1].strip()[:300],
        }
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["torchvision", "timm"], required=True)
    parser.add_argument("--out", default=None)
    parser.add_argument("--max-params", type=int, default=100_000_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out or f"runs/save_sweep_{args.source}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = (
        {json.loads(line)["name"]: json.loads(line) for line in out.read_text().splitlines()}
        if out.exists()
        else {}
    )
    for name in _names(args.source):
        if name in done:
            continue
        record = check_one(args.source, name, args.max_params)
        done[name] = record
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"{record['status']:<12} {name:<40} {record.get('base', '')} {record.get('reason', '')}",
            flush=True,
        )
    counts = Counter(r["status"] for r in done.values())
    print(f"{args.source}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
