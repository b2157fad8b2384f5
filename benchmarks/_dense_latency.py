"""Batch-1, one-thread latency of the unpruned and pruned dense models, PyTorch and ONNX Runtime.

Only architectures matter here, so each pruned model is re-made from the trained weights (the same
prune call as its accuracy row). The detector is timed two ways: its network (backbone, FPN and head
on a ``(1, 1, 128, 128)`` tensor: everything pruning changes) on both runtimes, and the whole
torchvision FCOS (transform, network, box decoding, NMS) in PyTorch; the whole model does not export
to ONNX (its post-processing is data-dependent). Times are thread CPU time, median of alternating
rounds (every model once per round), as in ``across_stack.py``; the CPU calibration is printed before
and after so the ratios can be read against the machine's state.
"""

from __future__ import annotations

import statistics

import torch
from _calibration import print_calibration
from _dense_prune import Setup, macs_of, make_pruned
from across_stack import Timer
from torch import nn

from netsculpt.measure.latency_model import median_time_ms


class FcosNetwork(nn.Module):
    """FCOS without its transform and post-processing: raw head outputs of a batched tensor."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = detector.backbone, detector.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"]


class _Whole:
    """PyTorch timer of the whole detector on its list-of-images input."""

    def __init__(self, model: nn.Module, image: torch.Tensor) -> None:
        self.model, self.image = model.eval(), image

    def __call__(self, runs: int) -> float:
        with torch.no_grad():
            return median_time_ms(lambda: self.model([self.image]), runs, 2, "thread")


def latency_part(setup: Setup, base: nn.Module, *, rounds: int = 3, runs: int = 20) -> dict:
    models = {"unpruned": base.eval()}
    for method in ("fisher", "l1", "tp"):
        models[method] = make_pruned(setup, base, method)[0].eval()
    full = macs_of(base, setup.example)
    macs = {n: macs_of(m, setup.example) / full for n, m in models.items()}
    x = torch.rand(1, 1, 128, 128) if setup.kind == "det" else torch.rand_like(setup.example[0])
    calibration = [str(print_calibration(f"{setup.kind} latency, before"))]
    results: dict[str, dict[str, float]] = {}
    columns = {}
    for rt in ("torch", "onnxruntime"):
        columns[rt] = {
            n: Timer(rt, FcosNetwork(m) if setup.kind == "det" else m, x, 1) for n, m in models.items()
        }
    if setup.kind == "det":
        columns["torch whole"] = {n: _Whole(m, x[0]) for n, m in models.items()}
    for column, timers in columns.items():
        times: dict[str, list[float]] = {n: [] for n in timers}
        for _ in range(rounds):  # alternating rounds: drift slows every model alike
            for n, timer in timers.items():
                times[n].append(timer(runs))
        results[column] = {n: round(statistics.median(t), 3) for n, t in times.items()}
        print(f"[{setup.kind} latency] {column}: {results[column]} ms", flush=True)
        for timer in timers.values():
            getattr(timer, "close", lambda: None)()
    calibration.append(str(print_calibration(f"{setup.kind} latency, after")))
    return {
        "ms": results,
        "macs_ratio": {n: round(v, 4) for n, v in macs.items()},
        "calibration": calibration,
    }
