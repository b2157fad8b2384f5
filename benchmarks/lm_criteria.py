"""LLM-Pruner-style pruning of a tiny causal LM: which criterion keeps perplexity, before any fine-tune?

A ``LlamaForCausalLM`` built from a config (hidden 128, 4 layers, 4 heads of 32, SwiGLU 384, byte
vocabulary 256, ``use_cache=False`` so whole heads prune) is trained on the byte-level corpus of the
Python standard library's docstrings (``netsculpt.data.text``; 90 / 5 / 5 split), then every group (each
layer's SwiGLU hidden units and its attention heads) loses 50 % with taylor, taylor_abs and fisher
(first-order |mean|, mean |.| and squared mask gradients of the next-token loss, as LLM-Pruner scores
structures), l1 and random (3 seeds). Every criterion sees the same calibration: ``--calib`` batches
of 16 x 128 bytes drawn (seeded) from the training split (taylor, taylor_abs and fisher also with 4x as
many: the first ``--calib`` are the same).
Test perplexity (exp of mean nats per predicted byte) is measured right after pruning and after the
same short fine-tune (``--tune-steps`` AdamW steps, lr 1e-3, seed 0).

The trained base is cached with ``ns.save`` under ``--cache`` (rerunning skips training).

    PYTHONPATH=src python benchmarks/lm_criteria.py [--epochs 2] [--tune-steps 60] [--out FILE]
        [--criteria taylor_abs,random]   # only those rows (with their 4x-calibration / seed variants)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from torch.utils.data import DataLoader, Subset

import netsculpt as ns
from netsculpt.data.text import TokenWindows, byte_splits, stdlib_docstrings
from netsculpt.importance import get_criterion
from netsculpt.measure import count_macs
from netsculpt.train import TrainConfig, evaluate, train

SEQ, BATCH = 128, 16
CONFIG = dict(
    vocab_size=256, hidden_size=128, num_hidden_layers=4, intermediate_size=384, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=SEQ, use_cache=False, tie_word_embeddings=False,
    bos_token_id=None, eos_token_id=None, pad_token_id=None,
)  # fmt: skip


def build() -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG))


def base_model(cache: Path, splits: dict, epochs: int) -> tuple[torch.nn.Module, float]:
    """The trained base: loaded from ``cache`` when a previous run saved it, else trained (seconds)."""
    folder = cache / f"llama_h128_l4_e{epochs}"
    if folder.is_dir() and any(folder.iterdir()):
        return ns.load(folder).eval(), 0.0
    model = build()
    start = time.perf_counter()
    train_loader = DataLoader(TokenWindows(splits["train"]), batch_size=BATCH, shuffle=True)
    held = DataLoader(TokenWindows(splits["held_out"]), batch_size=64)
    config = TrainConfig(epochs=epochs, batch_size=BATCH, optimizer="adamw", lr=3e-3, weight_decay=0.01,
                         grad_clip=1.0, seed=0)  # fmt: skip
    result = train(model, train_loader, held, config)
    print(f"trained {epochs} epochs: held-out {result.history[-1]}", flush=True)
    ns.save(model.eval(), folder)
    return model, time.perf_counter() - start


def perplexity(model: torch.nn.Module, loader: DataLoader) -> float:
    return evaluate(model, loader).perplexity  # type: ignore[attr-defined]


def fine_tune(model: torch.nn.Module, splits: dict, steps: int, test: DataLoader) -> float:
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(splits["train"].shape[0], generator=g)[: steps * BATCH].tolist()
    loader = DataLoader(Subset(TokenWindows(splits["train"]), pick), batch_size=BATCH, shuffle=False)
    config = TrainConfig(epochs=1, batch_size=BATCH, optimizer="adamw", lr=1e-3, weight_decay=0.0,
                         grad_clip=1.0, seed=0)  # fmt: skip
    return train(model, loader, test, config).history[-1]["test_perplexity"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--tune-steps", type=int, default=60)
    ap.add_argument("--calib", type=int, default=8, help="calibration batches of 16 x 128 bytes")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "netsculpt" / "bench" / "lm_criteria"))
    ap.add_argument("--out", default="")
    ap.add_argument("--train-windows", type=int, default=0, help="cap the training split (smoke runs)")
    ap.add_argument("--criteria", default="", help="comma-separated criteria to run (default: all rows)")
    args = ap.parse_args()
    if args.out:
        sys.stdout = open(args.out, "w", buffering=1)  # noqa: SIM115
    torch.set_num_threads(1)
    cache = Path(args.cache)
    corpus = stdlib_docstrings(cache)
    splits = byte_splits(corpus, SEQ)
    if args.train_windows:
        splits["train"] = splits["train"][: args.train_windows]
    print(f"corpus {corpus.name}: {corpus.stat().st_size:,} bytes; windows of {SEQ} bytes: "
          + ", ".join(f"{k} {v.shape[0]}" for k, v in splits.items()), flush=True)  # fmt: skip
    print_calibration("start")
    model, train_s = base_model(cache, splits, args.epochs)
    test = DataLoader(TokenWindows(splits["test"]), batch_size=64)
    g = torch.Generator().manual_seed(1)
    calib_idx = torch.randperm(splits["train"].shape[0], generator=g)[: 4 * args.calib * BATCH].tolist()
    calib = DataLoader(Subset(TokenWindows(splits["train"]), calib_idx), batch_size=BATCH)
    example = splits["test"][:2]
    base_ppl = perplexity(model, test)
    base_macs = count_macs(model, example)[0]
    print(
        f"base: test perplexity {base_ppl:.3f} (training {train_s:.0f} s; 0 = loaded from cache)", flush=True
    )
    rows = []
    n = args.calib
    runs = [(c, c, n) for c in ("taylor", "taylor_abs", "fisher", "l1")]
    runs += [(f"random (seed {s})", get_criterion("random", seed=s), n) for s in range(3)]
    runs += [(f"{c}, 4x calibration", c, 4 * n) for c in ("taylor", "taylor_abs", "fisher")]
    if args.criteria:  # e.g. "taylor_abs": its rows only (a row's criterion is the name before "," / " (")
        wanted = set(args.criteria.split(","))
        runs = [r for r in runs if r[0].split(",")[0].split(" (")[0] in wanted]
    for name, criterion, batches in runs:
        start = time.perf_counter()
        small = ns.prune(model, example, criterion=criterion, ratio=0.5, data=calib, calib_batches=batches)
        prune_s = time.perf_counter() - start
        macs = count_macs(small, example)[0] / base_macs
        before = perplexity(small, test)
        start = time.perf_counter()
        after = fine_tune(small, splits, args.tune_steps, test)
        tune_s = time.perf_counter() - start
        rows.append((name, macs, before, after, prune_s, tune_s))
        print(f"{name:26s} MACs {macs:.3f}x  ppl {before:8.3f} -> {after:7.3f}  "
              f"(prune {prune_s:.1f} s, tune {tune_s:.1f} s)", flush=True)  # fmt: skip
    print()
    print(f"base test perplexity {base_ppl:.3f}; 50 % of every group (SwiGLU units, heads), "
          f"{args.calib} x {BATCH} x {SEQ} calibration bytes, fine-tune {args.tune_steps} steps")  # fmt: skip
    print("| criterion | MACs | test ppl, no fine-tune | after fine-tune | prune s | tune s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, macs, before, after, prune_s, tune_s in rows:
        print(f"| {name} | {macs:.3f}x | {before:.3f} | {after:.3f} | {prune_s:.1f} | {tune_s:.1f} |")
    rand = [r for r in rows if r[0].startswith("random")]  # the 4x rows print above this mean
    if rand:
        print(f"| random, mean of 3 | | {statistics.mean(r[2] for r in rand):.3f} "
              f"| {statistics.mean(r[3] for r in rand):.3f} | | |")  # fmt: skip
    print_calibration("end")


if __name__ == "__main__":
    main()
