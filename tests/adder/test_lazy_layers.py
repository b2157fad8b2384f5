"""to_adder on a model whose lazy convs have seen no input: refused (before: the LazyConv2d, still with
``in_channels=0``, became an adder layer with no input channels, and the copy failed on its first input)."""

from __future__ import annotations

from netsculpt import to_adder
from netsculpt.adder import to_adder_
from netsculpt.errors import ConfigError
from tests._lazy import X, assert_refused, materialised_lazy_net


def test_converting_a_lazy_model_is_refused() -> None:
    assert_refused(lambda m: to_adder(m, keep=()), "convert", ConfigError)
    assert_refused(lambda m: to_adder_(m, keep=()), "convert", ConfigError)


def test_once_materialised_it_converts() -> None:
    model = materialised_lazy_net()
    assert to_adder(model, keep=())(X).shape == (4, 4)
