"""The string-keyed registries behind models, criteria, tasks, ..."""

from __future__ import annotations

import pytest

import netsculpt as ns
from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.registry import Registry


def test_unknown_name_lists_close_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah'. Did you mean: alpha\?"):
        reg.get("alpah")


@pytest.mark.parametrize("name", [None, "", 3])
def test_names_must_be_non_empty_strings(name: object) -> None:
    # ns.register_criterion(None) registered a criterion nobody could ask for by name
    with pytest.raises(ConfigError, match=r"name= takes a non-empty string naming the criterion"):
        ns.register_criterion(name)  # type: ignore[arg-type]
