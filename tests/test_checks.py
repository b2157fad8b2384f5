"""The shared argument checks: what each accepts, and that a refusal names the argument and the value."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from netsculpt import checks
from netsculpt.errors import ConfigError, PruningError


def test_whole_numbers_take_any_integer_type_but_not_bools_floats_or_strings() -> None:
    assert checks.whole(3, "steps") == 3 and checks.whole(np.int64(2), "steps") == 2
    assert checks.whole(0, "warmup", minimum=0) == 0
    for bad in (1.5, 2.0, "2", True, None, 0):
        with pytest.raises(
            ConfigError, match=rf"steps= takes a whole number >= 1; got {re.escape(repr(bad))}"
        ):
            checks.whole(bad, "steps")


def test_wholes_reads_one_number_as_a_list_and_refuses_a_string() -> None:
    assert checks.wholes(4, "batch_sizes") == [4]
    assert checks.wholes((1, np.int32(8)), "batch_sizes") == [1, 8]
    # "16" iterated is "1", "6": refused rather than timed at batches 1 and 6
    for bad in ("16", None, [1.5], ["a"], {1: 2}, [0]):
        with pytest.raises(ConfigError, match="batch_sizes= takes a whole number >= 1 or a list of them"):
            checks.wholes(bad, "batch_sizes")


def test_flags_names_paths_and_modules() -> None:
    assert checks.flag(np.bool_(True), "onnx") is True
    with pytest.raises(PruningError, match=r"ns.fold: convs= takes True or False; got 'no' \(str\)"):
        checks.flag("no", "convs", "ns.fold", PruningError)
    assert checks.names(None, "keep") == [] and checks.names("conv1", "keep") == ["conv1"]
    assert checks.names(("a", "b"), "keep") == ["a", "b"]
    with pytest.raises(ConfigError, match=r"keep= takes a name or a list of names; got 3 \(int\)"):
        checks.names(3, "keep")
    assert checks.path("out/m", "directory") == Path("out/m")
    with pytest.raises(ConfigError, match=r"directory= takes a path .*; got None \(NoneType\)"):
        checks.path(None, "directory")
    with pytest.raises(ConfigError, match=r"model= takes a torch.nn.Module .*; got 'lenet5' \(str\)"):
        checks.module("lenet5")
    assert isinstance(checks.module(nn.ReLU()), nn.ReLU)


def test_long_values_are_cut_short_in_messages() -> None:
    assert checks.shown(list(range(100))).endswith("... (list)")
    assert len(checks.shown(list(range(100)))) < 80
