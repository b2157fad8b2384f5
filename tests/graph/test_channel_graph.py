"""``ns.trace``'s own arguments: ``ignored`` in its spellings, and flags that must be booleans."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError, PruningError
from netsculpt.graph import register_module_rule, trace


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()


def test_ignored_none_ignores_nothing_and_one_name_is_a_list_of_one() -> None:
    x = torch.randn(1, 3, 12, 12)
    # ignored=None raised "'NoneType' object is not iterable"; it now means what the default () means
    assert [g.id for g in trace(_net(), x, ignored=None).prunable_groups] == ["0"]
    assert trace(_net(), x, ignored="0").prunable_groups == []


def test_ignored_takes_globs_and_classes_as_ns_prune_does() -> None:
    """``ns.trace(ignored=)`` read only names and modules: a glob was "not in the model", a class "not a
    module of this model", while ``ns.prune`` took both."""
    x = torch.randn(1, 3, 12, 12)
    assert trace(_net(), x, ignored=["*"]).prunable_groups == []
    assert trace(_net(), x, ignored=nn.Conv2d).prunable_groups == []
    assert trace(_net(), x, ignored=[nn.ReLU]).prunable_groups != []  # a ReLU holds no channels
    with pytest.raises(PruningError, match=r"ignored: the pattern 'layer4\.\*' matches no module name"):
        trace(_net(), x, ignored="layer4.*")
    with pytest.raises(PruningError, match=r"ignored: the model has no Linear module"):
        trace(_net(), x, ignored=[nn.Linear])


def test_wrong_argument_types_are_named() -> None:
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(PruningError, match=r"ignored= takes module names, globs .*; got 3 \(int\)"):
        trace(_net(), x, ignored=3)
    with pytest.raises(ConfigError, match=r"ns.trace: allow_inexact= takes True or False; got 'no'"):
        trace(_net(), x, allow_inexact="no")  # "no" is truthy: it opened inexact channels


def test_rules_register_for_module_classes_only() -> None:
    # an instance was registered silently and never matched any module
    with pytest.raises(ConfigError, match=r"ns.register_module_rule: types= takes nn.Module subclasses"):
        register_module_rule(nn.ReLU())
