"""Attention heads: a channel dim viewed as ``(heads, head_dim)`` with ``head_dim`` fixed loses whole heads.

``q.view(B, N, -1, head_dim)`` (Hugging Face BERT / ViT) splits the projection's channels into heads of
``head_dim`` positions each. The head size is written as a constant, so it cannot shrink; the head count
follows pruning (``-1``, a size read from ``x.shape``, or a module attribute the surgery rewrites).
Removing a *whole* head is then exact: every op after the view sees one head fewer and the others
unchanged (the attention scale depends on ``head_dim`` only). So each head becomes one channel, as a
GroupNorm group does (graph/rules/layers.py): its positions are tied, and the view's output labels
name the head along the head axis only, so attention products tie q, k and v head by head
(graph/rules/contract.py).

timm's ``Attention`` writes the head count from an attribute (``reshape(B, N, 3, self.num_heads,
self.head_dim)``, then ``reshape(B, N, self.attn_dim)``). While tracing, int attributes of the model's
own modules named for heads or widths are marked (``SizeAttribute``), so a view size read from one is
known to come from it, not from a number that happens to be equal; such a size follows pruning, and
``apply_plan_`` rewrites the attribute to the pruned size (surgery/apply.py). A head count written as a
number keeps its dim, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.graph.labels import along
from netsculpt.graph.plain_int import PlainInt
from netsculpt.graph.registry import Call
from netsculpt.graph.rules.common import size_args


def _says_heads(name: str) -> bool:
    low = name.lower()
    return "head" in low and not any(s in low for s in ("dim", "size", "kv", "key_value"))


def says_width(name: str) -> bool:
    low = name.lower()
    return low.endswith(("dim", "size")) and "head" not in low and "kv" not in low


class SizeAttribute(PlainInt):
    """An int attribute of a module (``self.num_heads``), marked for one trace."""

    module: str
    name: str

    def __new__(cls, n: int, module: str, name: str) -> SizeAttribute:
        self = super().__new__(cls, n)
        self.module, self.name = module, name
        return self


class DerivedSize(PlainInt):
    """An int the model's code computed from marked attributes (BLIP's ``embed_dim // self.num_heads``):
    rewriting those attributes would change it, so a split sized by it keeps its count
    (``attribute_sizes``)."""

    sources: frozenset[tuple[str, str]]

    def __new__(cls, n: int, sources: frozenset[tuple[str, str]]) -> DerivedSize:
        self = super().__new__(cls, n)
        self.sources = sources
        return self


def _sources(n: object) -> frozenset[tuple[str, str]]:
    if isinstance(n, SizeAttribute):
        return frozenset({(n.module, n.name)})
    return n.sources if isinstance(n, DerivedSize) else frozenset()


def _derive(op: str, reflected: bool = False) -> Callable[[int, object], object]:
    """An int operator of a marked size whose int result remembers the attributes it came from."""
    base = getattr(int, f"__{'r' if reflected else ''}{op}__")

    def method(self: int, other: object) -> object:
        if _counted(other):  # a channel count's own arithmetic (graph/sizes.py) decides
            return NotImplemented
        result = base(int(self), int(other) if isinstance(other, int) else other)
        if type(result) is int and isinstance(other, int) and not isinstance(other, bool):
            return DerivedSize(result, _sources(self) | _sources(other))
        return result

    return method


for _op in ("floordiv", "mul", "add", "sub", "mod"):
    for _cls in (SizeAttribute, DerivedSize):
        setattr(_cls, f"__{_op}__", _derive(_op))
        setattr(_cls, f"__r{_op}__", _derive(_op, reflected=True))


def mark_size_attributes(model: nn.Module) -> None:
    """Mark the head-count and width attributes of the model's own (non-torch) modules; the trace's
    ``ModuleSnapshot`` puts the plain ints back afterwards."""
    for mname, module in model.named_modules():
        if type(module).__module__.startswith("torch."):
            continue
        state = vars(module)
        for key, v in list(state.items()):
            if type(v) is int and (_says_heads(key) or says_width(key)):
                state[key] = SizeAttribute(v, mname, key)


def _counted(n: object) -> bool:
    from netsculpt.graph.sizes import ChannelCount, DerivedCount  # sizes imports the rules package

    return isinstance(n, ChannelCount | DerivedCount)


def fixed(n: object) -> bool:
    """A size written as a number, or read from a module attribute that stays (a head size)."""
    return (type(n) is int or isinstance(n, SizeAttribute | DerivedSize)) and n != -1


def attribute_sizes(sizes: list | None, splits: list[list[int]]) -> dict[int, tuple[str, str]]:
    """Output dims whose size the model's code reads from a module attribute that follows pruning:
    ``(module, attribute)``. A split's innermost size read from an attribute (T5's
    ``view(B, N, -1, self.key_value_proj_dim)``) is the head size when the head count is free: it stays."""
    if sizes is None:
        return {}
    found = {j: (n.module, n.name) for j, n in enumerate(sizes) if isinstance(n, SizeAttribute)}
    for dims in splits:
        outer = dims[:-1]
        inner = sizes[dims[-1]]
        if _counted(inner) or (
            isinstance(inner, DerivedSize) and any(found.get(d) in inner.sources for d in outer)
        ):
            # the head size is computed from a channel count or from the head count itself (BLIP's
            # ``embed_dim // self.num_heads``): rewriting the head count would change it, so it stays
            for d in outer:
                found.pop(d, None)
            continue
        heads_free = any(sizes[d] == -1 or _counted(sizes[d]) for d in outer) or any(
            d in found and _says_heads(found[d][1]) for d in outer
        )
        if heads_free:
            found.pop(dims[-1], None)
    return found


def head_axis(dims: list[int], sizes: list | None, by_attribute: dict) -> int | None:
    """The one dim of a split whose size follows pruning, when it is not the innermost (a head axis)."""
    if sizes is None:
        return None
    named = [d for d in dims[:-1] if d in by_attribute and _says_heads(by_attribute[d][1])]
    # ``reshape(B, N, 3, self.num_heads, -1)`` (timm Swin): the rest is the head size. Not when the head
    # size is another tensor's count over the heads (BLIP's ``embed_dim // self.num_heads`` with
    # ``embed_dim`` read from the input): fewer heads would make each head wider, not drop one
    if len(named) == 1 and not _counted(sizes[dims[-1]]):
        return named[0]
    free = [d for d in dims if sizes[d] == -1 or _counted(sizes[d]) or d in by_attribute]
    if len(free) != 1 or free[0] == dims[-1] or not fixed(sizes[dims[-1]]) or dims[-1] in by_attribute:
        return None
    return free[0]


def tie_heads(
    ctx: GraphBuilder, labels: np.ndarray, zero: np.ndarray, dims: list[int], head: int
) -> tuple[np.ndarray, np.ndarray]:
    """One channel per index of ``head``; labels and zero-status then vary along it only."""
    others = [d for d in dims if d != head]
    ctx.tie_across(labels, others, head)
    first = tuple(slice(0, 1) if d in others else slice(None) for d in range(labels.ndim))
    zero = np.broadcast_to(zero, labels.shape).all(axis=tuple(others), keepdims=True)
    return labels[first], zero


def head_count_note(sizes: list, j: int, labels_shape: tuple[int, ...]) -> str:
    """Why a constant head size after a constant head count did not let whole heads go instead."""
    outer = j - 1
    if outer < 0 or type(sizes[outer]) is not int or sizes[outer] == -1 or labels_shape[outer] == 1:
        return ""
    return (
        f"; whole heads cannot go instead: the head count ({sizes[outer]}) is written as a number, "
        "neither as -1 nor read from an int attribute named for heads (`self.num_heads`) that netsculpt "
        "could rewrite"
    )


def record_attributes(ctx: GraphBuilder, out: Value, by_attribute: dict[int, tuple[str, str]]) -> None:
    for j, (module, attr) in by_attribute.items():
        ctx.attr_sizes.append((module, attr, out.id, j))


# constant fills: every element of one is the same number, so each head's slice is one too
_FILLS = {"zeros": True, "new_zeros": True} | dict.fromkeys(("ones", "new_ones", "full", "new_full"), False)


def constant_per_head(ctx: GraphBuilder, call: Call, out: Value) -> None:
    """A constant tensor sized by a head-count attribute follows the heads it meets.

    T5's layers without their own relative-attention table use ``torch.zeros((1, self.n_heads, L, K))``
    as the position bias. Its head dim gets atoms of its own, so adding it to the attention logits ties
    them to the heads (not a pin: "meets a non-channel tensor"), and ``n_heads`` is rewritten with them.
    """
    fill = _FILLS.get(call.name.rsplit(".", 1)[-1])
    sizes = size_args(call)
    if fill is None or len(sizes) != out.ndim:
        return
    for j, n in enumerate(sizes):
        if isinstance(n, SizeAttribute) and _says_heads(n.name) and out.shape[j] > 1:
            out.labels = along(ctx.fresh(out.shape[j]), j, out.ndim)
            out.zero = np.full(out.labels.shape, fill)
            ctx.attr_sizes.append((n.module, n.name, out.id, j))
            return
