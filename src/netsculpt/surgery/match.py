"""Does a saved plan belong to this model? Checked before surgery, so a plan made for another network
(a ResNet-18 plan on a ResNet-34 shares its first groups) is refused instead of half-applied.

A plan identifies the channel space it was made for by ``sizes`` (every group id and its width when
planned) and, since plans record it, ``meta["model_class"]`` (the model's class). Plans without the
class (older files, hand-made plans whose ``sizes`` may list only the groups they prune) are held to
the groups they name; groups they do not name are only warned about.
"""

from __future__ import annotations

from torch import nn

from netsculpt.errors import NetsculptWarning, PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.surgery.plan import PrunePlan

MODEL_KEY = "model_class"
_FIX = (
    "make a plan for this model (ns.plan_pruning(model, x, ...) or `netsculpt prune`), or apply the plan "
    "to the model it was made for"
)


def model_class(model: nn.Module) -> str:
    """What a plan records of its model: the class path (the same for a zoo build and a direct build)."""
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def stamp(plan: PrunePlan, model: nn.Module) -> PrunePlan:
    """Record ``model``'s class in ``plan`` (in place; returned for chaining)."""
    plan.meta.setdefault(MODEL_KEY, model_class(model))
    return plan


def check_plan_fits(graph: ChannelGraph, plan: PrunePlan, model: nn.Module) -> None:
    """Refuse ``plan`` if its groups are not this model's (naming the first that differs); warn when
    only the recorded model class differs."""
    here = model_class(model)
    made_for = plan.meta.get(MODEL_KEY)
    made_as = f"a {made_for}" if made_for and made_for != here else "a model"
    about = (
        f"the plan was made for {made_as} with {len(plan.sizes)} channel groups; this {here} has "
        f"{len(graph.groups)}"
    )
    sizes = {g.id: g.size for g in graph.groups}
    for gid in dict.fromkeys([*plan.sizes, *plan.keep]):
        if gid not in sizes:
            raise PruningError(
                f"this plan does not fit the model: it names group {gid!r}, which the model does not have "
                f"({about}); {_FIX}"
            )
        expected = plan.sizes.get(gid, sizes[gid])
        if expected != sizes[gid]:
            raise PruningError(
                f"this plan does not fit the model: group {gid!r} has {sizes[gid]} channels here but "
                f"{expected} in the plan ({about}); {_FIX}"
            )
    unlisted = [gid for gid in sizes if gid not in plan.sizes]
    if unlisted and made_for:
        raise PruningError(
            f"this plan does not fit the model: the model has group {unlisted[0]!r}, which the plan does "
            f"not list ({len(unlisted)} such groups; {about}); {_FIX}"
        )
    if unlisted:
        warn_user(
            f"the plan does not list {len(unlisted)} of this model's channel groups ({unlisted[0]!r} first); "
            "they keep all their channels. If the plan was made for another model, " + _FIX,
            NetsculptWarning,
        )
    elif made_for and made_for != here:
        warn_user(
            f"the plan was made for a {made_for} and this model is a {here}; every channel group matches, "
            "so it is applied",
            NetsculptWarning,
        )
