"""The coverage check for dense-prediction models: prune 50% per group exactly, compare raw head outputs.

Detectors end in score thresholds, top-k and NMS, which are discontinuous: a difference of 1e-7 in one
score can swap two boxes. So exactness is checked where the function is continuous, on the raw outputs
of the heads (RPN objectness and deltas, RoI class logits and box regression, mask and keypoint logits,
dense class/box/centerness maps), captured with forward hooks before any decoding. The final outputs
are checked for the same structure (keys, list lengths), not for equal values.
"""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from netsculpt.graph import trace
from netsculpt.measure import count_macs
from netsculpt.measure._inputs import tensor_leaves
from netsculpt.surgery import apply_plan_, mask_
from netsculpt.surgery.verify import random_plan
from tests.coverage._check import TOLERANCE, make_nontrivial_

# modules whose outputs are the raw predictions of torchvision's and ultralytics' detectors
HEADS = (
    "rpn.head",
    "roi_heads.box_predictor",
    "roi_heads.mask_predictor",
    "roi_heads.keypoint_predictor",
    "head",
)


def freeze_batch_norm_(model: nn.Module) -> nn.Module:
    """BatchNorm2d -> FrozenBatchNorm2d with the same statistics: what torchvision builds for detectors
    with pretrained backbones (netsculpt never downloads the weights, so the tests freeze by hand)."""
    from torchvision.ops import FrozenBatchNorm2d

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key).detach())
                setattr(parent, name, frozen)
    return model


def raw_outputs(model: nn.Module, inputs: tuple) -> tuple[torch.Tensor, object]:
    """Every float tensor the heads returned, as one vector, and the model's final output."""
    modules = dict(model.named_modules())
    seen: list[object] = []
    hooks = [modules[n].register_forward_hook(lambda m, a, o: seen.append(o)) for n in HEADS if n in modules]
    try:
        with torch.no_grad():
            out = model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    leaves = [t.reshape(-1).double() for t in tensor_leaves(seen or out) if t.is_floating_point()]
    return torch.cat(leaves), out


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_dense_model(model: nn.Module, inputs: tuple) -> dict[str, float]:
    """Trace (leaving the model as it was), mask vs prune at 50% per group, MACs ratio."""
    model = make_nontrivial_(model)
    before = _state(model)
    graph = trace(model, inputs)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    copy.deepcopy(model)
    pickle.dumps(model)
    plan = random_plan(graph, 0.5, seed=0)
    assert plan.keep, f"nothing prunable:\n{graph}"
    macs_before = count_macs(model, inputs)[0]
    reference, ref_out = raw_outputs(mask_(copy.deepcopy(model), graph, plan), inputs)
    apply_plan_(model, graph, plan)
    pruned, out = raw_outputs(model, inputs)
    assert tree_flatten(out)[1] == tree_flatten(ref_out)[1], "the output structure changed"
    assert pruned.shape == reference.shape and torch.isfinite(reference).all()
    err = float((pruned - reference).norm() / reference.norm().clamp_min(1e-12))
    assert err <= TOLERANCE, f"relative error {err:.2e} on the raw head outputs"
    return {"err": err, "macs_ratio": count_macs(model, inputs)[0] / macs_before}
