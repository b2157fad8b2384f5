"""register_fixup: what it accepts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.surgery import ModuleShapes, register_fixup


@pytest.mark.parametrize("types", [(3,), (nn.Linear(2, 2),), (int,)])
def test_fixups_register_for_module_classes_only(types: tuple) -> None:
    # an instance or a non-module class was registered silently and never matched any module
    with pytest.raises(ConfigError, match=r"ns.register_fixup: types= takes nn.Module subclasses"):
        register_fixup(*types)


class _Block(nn.Module):
    """Stores its inner width; its own input and output widths do not change when ``proj`` is pruned."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.out = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)
        self.width = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.proj(x)))


@register_fixup(_Block)
def _block_fixup(module: _Block, shapes: ModuleShapes) -> None:
    module.width = module.proj.weight.shape[0]


@pytest.mark.parametrize("nested", [False, True])
def test_fixup_of_a_block_whose_inner_layer_was_sliced(nested: bool) -> None:
    # docs/engine.md's fixup example: the block's boundary shapes stay, so its fixup was never called
    # and `width` still said 8 after `proj` kept 4 channels
    model = nn.Sequential(_Block(), nn.ReLU()) if nested else _Block()
    small = ns.prune(model, torch.randn(1, 3, 8, 8), ratio=0.5, round_to=1)
    block = small[0] if nested else small
    assert block.proj.out_channels == 4
    assert block.width == 4


class _Translator(nn.Module):
    """Token ids in, token logits out, through nn.Transformer (it checks inputs against its d_model)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.out = nn.Embedding(50, 16), nn.Linear(16, 50)
        self.t = nn.Transformer(16, 2, 1, 1, 32, batch_first=True, dropout=0.0)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return self.out(self.t(self.emb(src), self.emb(tgt)))


def test_nn_transformer_d_model_follows_the_pruned_width() -> None:
    """Before, allow_inexact=True ended in 'the pruned model no longer runs' (src/tgt width != d_model)."""
    torch.manual_seed(0)
    model = _Translator().eval()
    ids = (torch.randint(0, 50, (2, 7)), torch.randint(0, 50, (2, 5)))
    small = ns.prune(model, ids, ratio=0.5, allow_inexact=True, round_to=1)
    assert small.t.d_model == small.emb.embedding_dim == 8
    assert small(*ids).shape == (2, 5, 50)
