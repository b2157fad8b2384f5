"""RevNet CIFAR models: the paper's sizes, and training steps equal to their ordinary-autograd twins."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models import ResNetCifar, ReversibleBlock, ReversibleSequence, RevNetCifar, create_model


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Gomez et al. 2017, table 1: RevNet-38 0.46M, RevNet-110 1.73M parameters (CIFAR-10)
@pytest.mark.parametrize(("depth", "published_millions"), [(38, 0.46), (110, 1.73)])
def test_parameter_counts_match_the_paper(depth: int, published_millions: float) -> None:
    assert abs(count(create_model(f"revnet{depth}_cifar")) / 1e6 - published_millions) < 0.015


def test_revnet26_has_the_conv_shapes_of_resnet26() -> None:
    rev, res = create_model("revnet26_cifar"), ResNetCifar(26)

    def shapes(m: nn.Module) -> list[tuple[int, ...]]:
        return sorted(
            tuple(c.weight.shape) for c in m.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)
        )

    rev_3x3 = shapes(rev)
    # the same 3x3 convs, except the stem (3->32, not 3->16) and the first conv of each stage's block
    assert len(rev_3x3) == len(shapes(res)) == 25
    assert abs(count(rev) - count(res)) / count(res) < 0.02


@pytest.mark.parametrize("depth", [8, 20, 56])
def test_depth_must_be_12n_plus_2(depth: int) -> None:
    with pytest.raises(ConfigError, match="12n\\+2"):
        RevNetCifar(depth)


def test_stage_layout() -> None:
    model = create_model("revnet38_cifar")
    seqs = [m for m in model.modules() if isinstance(m, ReversibleSequence)]
    assert [len(s.blocks) for s in seqs] == [3, 2, 2]  # stages 2 and 3 start with a strided transition


def test_training_step_equals_ordinary_autograd() -> None:
    torch.manual_seed(0)
    model = RevNetCifar(26, widths=(8, 16, 16)).double().train()
    twin = copy.deepcopy(model).set_memory_saving(False)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    for m in (model, twin):
        nn.functional.cross_entropy(m(x), target).backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-5, msg=name)
    for (name, b), c in zip(model.named_buffers(), twin.buffers()):
        assert torch.equal(b, c), name


@pytest.mark.parametrize("seed", [0, 1])
def test_pruning_a_revnet_is_exact(seed: int) -> None:
    """The additive couplings tie x1, F's output and y1 (and x2, G's output, y2) across a stage, and the
    stage's ``chunk(2)`` ties position j of both halves: one group per stage, pruned exactly. The tracer
    runs without grad, so it sees the plain ops, never the custom autograd function."""
    from netsculpt.graph import trace
    from netsculpt.surgery.verify import pruning_error, random_plan
    from tests.graph.archs import randomize_

    torch.manual_seed(seed)
    model = randomize_(RevNetCifar(26, widths=(8, 16, 16)))
    x = torch.randn(2, 3, 16, 16)
    graph = trace(model, x)
    stage = next(g for g in graph.groups if g.id == "conv1")
    names = {m.name for m in stage.members}
    assert {"layer1.0.blocks.0.fns.0.4.weight", "layer1.0.blocks.1.fns.1.4.weight"} <= names
    assert stage.size == 8 // 2 and stage.prunable.all()  # both halves lose the same positions
    plan = random_plan(graph, 0.5, seed)
    assert plan.keep
    assert pruning_error(model, graph, plan, torch.randn(2, 3, 16, 16)) <= 1e-4


def test_pruned_revnet_still_trains_reversibly() -> None:
    import netsculpt as ns

    torch.manual_seed(0)
    model = RevNetCifar(26, widths=(8, 16, 16))
    x = torch.randn(2, 3, 16, 16)
    small = ns.prune(model, x, ratio=0.5, round_to=1).double().train()
    seqs = [m for m in small.modules() if isinstance(m, ReversibleSequence)]
    assert seqs and all(s.memory_saving for s in seqs)
    twin = copy.deepcopy(small).set_memory_saving(False)
    xb = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    for m in (small, twin):
        m(xb).square().mean().backward()
    for (name, p), q in zip(small.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-5, msg=name)
    assert sum(p.numel() for p in small.parameters()) < 0.5 * count(model)


def test_pruning_a_grouped_reversible_stack_is_exact() -> None:
    """Three groups: ``chunk(3)`` ties position j of every group, each function's output joins its group."""
    from netsculpt.graph import trace
    from netsculpt.models.revnet_cifar import residual_fn
    from netsculpt.surgery.verify import pruning_error, random_plan
    from tests.graph.archs import randomize_

    torch.manual_seed(0)
    blocks = [ReversibleBlock(*(residual_fn(4, 4) for _ in range(3))) for _ in range(2)]
    model = randomize_(
        nn.Sequential(
            nn.Conv2d(3, 12, 3, padding=1),
            ReversibleSequence(blocks),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(12, 5),
        )
    )
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    stem = next(g for g in graph.groups if g.id == "0")
    assert stem.size == 4 and stem.prunable.all()
    plan = random_plan(graph, 0.5, 0)
    assert pruning_error(model, graph, plan, torch.randn(2, 3, 8, 8)) <= 1e-4
