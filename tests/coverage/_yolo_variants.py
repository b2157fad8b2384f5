"""What a new user does with each ultralytics model family, run inside tests/coverage/_yolo_worker.py.

Every model is built from its YAML with random weights (nothing downloaded) and goes through: trace,
50 % per group pruned vs masked (raw outputs), ``ns.prune`` with a MACs target, ``ns.save`` /
``ns.load(model=...)`` (a user-built ultralytics model is saved as its class: loading needs the unpruned
model), ``ns.measure`` with ONNX export, and a check that none of this left anything in the model.
"""

from __future__ import annotations

import copy
import os
import pickle
import tempfile
from typing import Any

import torch
from torch import nn

import netsculpt as ns
from tests.coverage._check import make_nontrivial_
from tests.coverage._dense import check_dense_model, raw_outputs

VARIANTS = (
    "yolov8n.yaml",
    "yolo11n.yaml",
    "yolov8n-seg.yaml",
    "yolov8n-pose.yaml",
    "yolov8n-obb.yaml",
    "yolov8n-cls.yaml",
    "yolo11n-seg.yaml",
    "yolo11n-pose.yaml",
    "yolov5nu.yaml",
    "yolov9t.yaml",
    "yolov10n.yaml",
    "rtdetr-l.yaml",
)


def build(cfg: str) -> nn.Module:
    """The task model ultralytics' ``YOLO(cfg).model`` builds, with 3 classes, in eval mode."""
    from ultralytics.nn import tasks

    suffixes = {"-seg": "Segmentation", "-pose": "Pose", "-obb": "OBB", "-cls": "Classification"}
    default = "RTDETRDetection" if cfg.startswith("rtdetr") else "Detection"
    kind = next((k for s, k in suffixes.items() if s in cfg), default)
    torch.manual_seed(0)
    return make_nontrivial_(getattr(tasks, f"{kind}Model")(cfg, nc=3, verbose=False)).eval()


def _attributes(model: nn.Module) -> dict[str, list[str]]:
    return {name: sorted(vars(m)) for name, m in model.named_modules()}


def check_variant(cfg: str) -> dict[str, Any]:
    """The table row of docs/engine.md for one model (a failing step names itself in ``failure``)."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    row: dict[str, Any] = {}
    try:
        # built once (ultralytics runs a 256 px forward and its weight init): copies of it are cheaper
        model = build(cfg)
        unpruned = copy.deepcopy(model)  # the architecture ns.load(model=) takes, before anything ran
        row.update(check_dense_model(copy.deepcopy(model), (x,)))
        graph = ns.trace(model, x)
        row["groups"] = sum(g.n_prunable > 0 for g in graph.groups)
        state, attributes = copy.deepcopy(model.state_dict()), _attributes(model)
        small = ns.prune(model, x, ratio=0.5)
        row["prune_macs"] = (
            ns.measure(small, x, latency=False).macs / ns.measure(model, x, latency=False).macs
        )
        row["target_macs"] = _target_ratio(model, x)
        row["reloaded_err"] = _round_trip(unpruned, small, x)
        row["onnx"] = "onnxruntime" not in ns.measure(small, x, onnx=True, runs=1, warmup=0).unavailable
        after = model.state_dict()
        row["left_as_found"] = (
            _attributes(model) == attributes
            and all(torch.equal(after[k], v) for k, v in state.items())
            and not any(k.startswith("netsculpt") for m in model.modules() for k in vars(m))
        )
        copy.deepcopy(model), pickle.dumps(model)
    except (AssertionError, ns.NetsculptError) as exc:
        row["failure"] = f"{type(exc).__name__}: {exc}"[:2000]
    return row


def _target_ratio(model: nn.Module, x: torch.Tensor) -> float:
    small = ns.prune(model, x, target="macs=0.5")
    return ns.measure(small, x, latency=False).macs / ns.measure(model, x, latency=False).macs


def _round_trip(unpruned: nn.Module, small: nn.Module, x: torch.Tensor) -> float:
    """``ns.save`` then ``ns.load(model=<the unpruned architecture>)``: relative error of the outputs."""
    with tempfile.TemporaryDirectory(prefix="netsculpt-yolo-save-") as folder:
        path = os.path.join(folder, "model")
        ns.save(small, path)
        try:
            ns.load(path)
            raise AssertionError("a user-built ultralytics model loaded without model=")
        except ns.NetsculptError as exc:
            assert "model=" in str(exc), exc
        loaded = ns.load(path, model=unpruned)
    reference, _ = raw_outputs(small, (x,))
    got, _ = raw_outputs(loaded, (x,))
    return float((got - reference).norm() / reference.norm())


def check_engine_object(cfg: str) -> dict[str, Any]:
    """``ns.trace(YOLO(cfg))``: the engine object, not its network, as a user may pass it first; fresh,
    and after it predicted once (its network then fused, so the old train-mode retrace called train())."""
    from ultralytics import YOLO

    refusals = []
    with tempfile.TemporaryDirectory(prefix="netsculpt-yolo-cwd-") as cwd:
        here = os.getcwd()
        os.chdir(cwd)  # ultralytics' train() would write runs/ and datasets/ here
        try:
            for predicted in (False, True):
                yolo, x = YOLO(cfg), torch.rand(1, 3, 64, 64)
                if predicted:
                    yolo(x, verbose=False)
                for call in (ns.trace, ns.measure):  # measure timed its predictor, printing every call
                    try:
                        call(yolo, x)
                        refusals.append(None)
                    except ns.NetsculptError as exc:
                        refusals.append(str(exc))
        finally:
            os.chdir(here)
        return {"refusals": refusals, "written": sorted(os.listdir(cwd))}
