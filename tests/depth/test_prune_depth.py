"""Block removal: exact against the branch zeroed, saved as plain data, composes with width pruning."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.depth import BudgetError
from netsculpt.errors import PruningError
from tests.depth.conftest import Mixed, randomise_bn


def _zeroed(model, branch: str, x: torch.Tensor) -> torch.Tensor:
    handle = model.get_submodule(branch).register_forward_hook(lambda m, a, out: torch.zeros_like(out))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        handle.remove()


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_removal_equals_zeroed_branch(shortcut: str) -> None:
    model = randomise_bn(ns.create_model("resnet20_cifar", num_classes=10, shortcut=shortcut))
    x = torch.randn(2, 3, 32, 32)
    graph = ns.trace(model, x)
    for unit in graph.blocks:  # every block, identity and projection shortcuts alike
        small = ns.prune_depth(model, x, blocks=[unit.name], graph=graph)
        with torch.no_grad():
            assert (small(x) - _zeroed(model, unit.branch, x)).abs().max() <= 1e-4


def test_torchvision_projection_block() -> None:
    model = randomise_bn(torchvision.models.resnet18(num_classes=5))
    x = torch.randn(1, 3, 64, 64)
    small = ns.prune_depth(model, x, blocks=["layer3.0", "layer4.1"])
    expect_model = copy.deepcopy(model)
    hooks = [
        expect_model.get_submodule(b).register_forward_hook(lambda m, a, out: torch.zeros_like(out))
        for b in ("layer3.0.bn2", "layer4.1.bn2")
    ]
    with torch.no_grad():
        expect = expect_model(x)
        assert (small(x) - expect).abs().max() <= 1e-4
    for h in hooks:
        h.remove()
    assert "downsample" in dict(small.layer3[0].named_children())
    assert not any("netsculpt" in type(m).__module__ for m in small.modules())


def test_count_and_criteria(resnet20) -> None:
    x = torch.randn(2, 3, 32, 32)
    data = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(2)]
    for criterion in ("output_change", "sensitivity", "l1"):
        plan = ns.depth.plan_depth(resnet20, x, blocks=3, criterion=criterion, data=data)
        assert len(plan.blocks) == 3 and len(plan.scores) == 9
        kept = sorted(plan.scores.values())
        assert max(plan.scores[b["name"]] for b in plan.blocks) <= kept[3]


def test_macs_target_and_unreachable_budget(resnet20) -> None:
    x = torch.randn(1, 3, 32, 32)
    small = ns.prune_depth(resnet20, x, target=ns.Target(macs=0.7))
    macs_small = ns.measure(small, x).macs
    macs_full = ns.measure(resnet20, x).macs
    assert macs_small <= 0.7 * macs_full
    with pytest.raises(BudgetError, match="closest achievable is 0\\.") as info:
        ns.prune_depth(resnet20, x, target=ns.Target(macs=0.01))
    assert 0.01 < info.value.closest < 0.3


def test_target_and_block_spellings_match_ns_prune(resnet20) -> None:
    """``prune_depth`` reads the target spellings ``ns.prune`` reads, and one block name as a list of one;
    a value it cannot read is a PruningError that says what to give, not an AttributeError."""
    x = torch.randn(1, 3, 32, 32)
    reference = ns.depth.plan_depth(resnet20, x, target=ns.Target(macs=0.7)).blocks
    assert reference
    for spelling in ("macs=0.7", {"macs": 0.7}):
        assert ns.depth.plan_depth(resnet20, x, target=spelling).blocks == reference
    assert ns.depth.plan_depth(resnet20, x, blocks="layer1.1").blocks == (
        ns.depth.plan_depth(resnet20, x, blocks=["layer1.1"]).blocks
    )
    with pytest.raises(PruningError, match="unknown target 'flops'"):
        ns.prune_depth(resnet20, x, target="flops=0.5")
    for bad in (2.5, True, ["layer1.1", 3]):
        with pytest.raises(PruningError, match="give a count"):
            ns.prune_depth(resnet20, x, blocks=bad)


def test_unremovable_named_block_errors() -> None:
    with pytest.raises(PruningError, match="cannot be removed: its shortcut is computed by code"):
        ns.prune_depth(Mixed(), torch.randn(1, 3, 16, 16), blocks=["down"])
    with pytest.raises(PruningError, match=r"Did you mean layer1\.1"):
        ns.prune_depth(
            ns.create_model("resnet20_cifar", num_classes=10), torch.randn(1, 3, 32, 32), blocks=["layer1.11"]
        )


def test_save_load_round_trip(resnet20, tmp_path) -> None:
    x = torch.randn(2, 3, 32, 32)
    small = ns.prune_depth(resnet20, x, blocks=4)
    ns.save(small, tmp_path / "m")
    again = ns.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    assert [e["kind"] for e in again.netsculpt_spec["edits"]] == ["prune_depth"]


@pytest.mark.parametrize("order", ["width_first", "depth_first"])
def test_composes_with_width_pruning(resnet20, tmp_path, order: str) -> None:
    x = torch.randn(2, 3, 32, 32)
    if order == "width_first":
        width = ns.prune(resnet20, x, ratio=0.5)
        small = ns.prune_depth(width, x, blocks=["layer1.1", "layer3.2"])
        reference = _zeroed(copy.deepcopy(width), "layer1.1.bn2", x)  # one block: check exactness on it
        one = ns.prune_depth(width, x, blocks=["layer1.1"])
        with torch.no_grad():
            assert (one(x) - reference).abs().max() <= 1e-4
    else:
        depth = ns.prune_depth(resnet20, x, blocks=["layer1.1", "layer3.2"])
        small = ns.prune(depth, x, ratio=0.5)
    ns.save(small, tmp_path / "m")
    again = ns.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    assert ns.measure(small, x).params < 0.5 * ns.measure(resnet20, x).params


def test_timm_resnet_removal_exact(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = randomise_bn(timm.create_model("resnet18", num_classes=5))
    x = torch.randn(1, 3, 64, 64)
    small = ns.prune_depth(model, x, blocks=["layer2.0"])  # a projection (downsample) block
    with torch.no_grad():
        assert (small(x) - _zeroed(model, "layer2.0.bn2", x)).abs().max() <= 1e-4
    ns.save(small, tmp_path / "m")
    again = ns.load(tmp_path / "m", model=timm.create_model("resnet18", num_classes=5))
    with torch.no_grad():
        assert torch.equal(again(x), small(x))


def test_latency_and_params_targets(resnet20) -> None:
    x = torch.randn(1, 3, 32, 32)
    by_params = ns.depth.plan_depth(resnet20, x, target=ns.Target(params=0.8))
    assert by_params.blocks and by_params.cost <= 0.8
    small = ns.depth.remove_blocks(resnet20, by_params.blocks)
    assert ns.measure(small, x).params <= 0.8 * ns.measure(resnet20, x).params + 1
    try:  # blocks timed alone vs the model end to end: on a loaded machine 0.9 may be out of reach
        by_latency = ns.depth.plan_depth(resnet20, x, target=ns.Target(latency=0.9))
        assert by_latency.blocks and 0 < by_latency.cost <= 0.9
    except BudgetError as err:
        assert 0.9 < err.closest < 1.0 and "closest achievable" in str(err)


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_other_torchvision_residual_designs_exact(name: str) -> None:
    model = randomise_bn(torchvision.models.get_model(name, num_classes=5))
    x = torch.randn(1, 3, 64, 64)
    graph = ns.trace(model, x)
    unit = graph.blocks[len(graph.blocks) // 2]
    small = ns.prune_depth(model, x, blocks=[unit.name], graph=graph)
    with torch.no_grad():
        assert (small(x) - _zeroed(model, unit.branch, x)).abs().max() <= 1e-4


def test_a_model_in_train_mode_scores_and_removes_as_in_eval_mode() -> None:
    """Fresh torchvision models come in train mode: the shortcut copies used to stay in it, so a
    downsample's batch norm read batch statistics (other blocks chosen; batch 1 raised a ValueError)."""
    model = randomise_bn(torchvision.models.resnet18(num_classes=10))
    x = torch.randn(1, 3, 32, 32)
    from netsculpt.depth.criteria import output_change

    units = [u for u in ns.trace(model.eval(), x).blocks if u.removable]
    in_eval = output_change(model, units, None, (x,))
    in_train = output_change(model.train(), units, None, (x,))
    assert in_train == in_eval and model.training
    small = ns.prune_depth(model, x, blocks=2)
    assert len(small.netsculpt_spec["edits"][0]["blocks"]) == 2


def test_wrong_argument_types_are_named(resnet20) -> None:
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(
        PruningError, match=r"ns.prune_depth: criterion= takes 'output_change', 'sensitivity'"
    ):
        ns.prune_depth(resnet20, x, blocks=1, criterion=None)  # was "'NoneType' object has no attribute"
    with pytest.raises(PruningError, match=r"ns.prune_depth has no option block; its options: blocks, "):
        ns.prune_depth(resnet20, x, block=1)
    with pytest.raises(PruningError, match=r"calib_batches= takes a whole number >= 1; got 'all'"):
        ns.prune_depth(resnet20, x, blocks=1, calib_batches="all")
