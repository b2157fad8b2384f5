"""register_fixup: what it accepts."""

from __future__ import annotations

import pytest
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.surgery import register_fixup


@pytest.mark.parametrize("types", [(3,), (nn.Linear(2, 2),), (int,)])
def test_fixups_register_for_module_classes_only(types: tuple) -> None:
    # an instance or a non-module class was registered silently and never matched any module
    with pytest.raises(ConfigError, match=r"ns.register_fixup: types= takes nn.Module subclasses"):
        register_fixup(*types)
