"""Messages name a value's type with the right article (netsculpt/errors.py): "returns a int" before."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

from netsculpt.errors import DataError, a_type, with_article


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, "an int"),
        (0.5, "a float"),
        (None, "None"),
        ([], "a list"),
        (OrderedDict(), "an OrderedDict"),
        (np.zeros(1), "an ndarray"),
        (torch.ones(1), "a Tensor"),
        (object(), "an object"),
    ],
)
def test_a_type_reads_as_spoken(value: object, expected: str) -> None:
    assert a_type(value) == expected


def test_with_article_knows_a_vowel_letter_is_not_always_a_vowel_sound() -> None:
    assert [with_article(n) for n in ("UUID", "UnionType", "Image", "EnumMeta")] == [
        "a UUID",
        "a UnionType",
        "an Image",
        "an EnumMeta",
    ]


def test_a_training_loop_names_a_bad_batch_with_the_right_article() -> None:
    from netsculpt.train.evaluate import unpack

    with pytest.raises(DataError, match=r"the loader yielded an int$"):
        unpack(3, torch.device("cpu"))
