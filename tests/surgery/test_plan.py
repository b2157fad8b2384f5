"""PrunePlan's JSON form: what a malformed plan file is told."""

from __future__ import annotations

import pytest

from netsculpt.errors import PruningError
from netsculpt.surgery import PrunePlan


def test_round_trip() -> None:
    plan = PrunePlan({"conv1": [0, 2]}, {"conv1": 4}, {"criterion": "l1"})
    again = PrunePlan.from_dict(plan.to_dict())
    assert (again.keep, again.sizes, again.meta) == (plan.keep, plan.sizes, plan.meta)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keep": 3, "sizes": {}}, r"'keep' must map group ids to lists of channel indices"),
        ({"keep": {"conv1": None}, "sizes": {"conv1": 4}}, r"'keep' must map group ids"),
        ({"keep": {}, "sizes": {"conv1": "four"}}, r"'sizes' group ids to channel counts"),
        (
            {"keep": {}, "sizes": {}, "version": "1"},
            r"prune plan version '1' is not one this netsculpt reads",
        ),
        ({"keep": {}, "sizes": {}, "version": 2}, r"prune plan version 2 is not one this netsculpt reads"),
        ([1, 2], r"expected keys 'keep' and 'sizes', got \[1, 2\] \(list\)"),
    ],
)
def test_malformed_plans_are_refused(data: object, message: str) -> None:
    # each was a raw AttributeError / TypeError from inside from_dict
    with pytest.raises(PruningError, match=message):
        PrunePlan.from_dict(data)  # type: ignore[arg-type]
