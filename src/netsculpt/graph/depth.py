"""Depth units found in the traced data flow: removable residual blocks and exact folds.

A **block** is a module ``M`` called once whose own forward ends in ``y = post(shortcut(x) + f(x))``:
one residual add written directly in ``M``, a shortcut that is ``M``'s input or the output of one of
``M``'s child modules applied to that input (a projection), and only element-wise activations after the
add. Removing it keeps ``post(shortcut(x))``: exactly ``M`` with the branch ``f`` output zeroed. A
**fold** is a conv/linear whose output only feeds a BatchNorm (folded into its weights), or a conv whose
output only feeds another conv with nothing between, merged into one conv when that is exact.

Everything is read from ``GraphBuilder.ops`` (the same trace as the channel groups), so it works on any
model the tracer follows, not only on known classes; the reason a unit cannot be removed or folded is
kept and printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netsculpt.graph.builder import GraphBuilder, OpRecord

_ADDS = {"Tensor.__add__", "Tensor.__radd__", "Tensor.__iadd__", "Tensor.add", "Tensor.add_", "torch.add"}
# element-wise activations a removed block may keep after its add, by the name surgery rebuilds them with
ACTIVATIONS = {
    "F.relu": "relu",
    "torch.relu": "relu",
    "Tensor.relu": "relu",
    "Tensor.relu_": "relu",
    "torch.relu_": "relu",
    "F.silu": "silu",
    "F.gelu": "gelu",
    "F.hardswish": "hardswish",
    "torch.sigmoid": "sigmoid",
    "Tensor.sigmoid": "sigmoid",
    "torch.tanh": "tanh",
    "Tensor.tanh": "tanh",
}
_CONVS = {"torch.conv1d", "torch.conv2d", "torch.conv3d", "F.conv1d", "F.conv2d", "F.conv3d", "F.linear"}
_NORMS = {"F.batch_norm"}


@dataclass
class DepthUnit:
    """One removable block or foldable pair, or why it is neither."""

    kind: str  # "block" | "fold-bn" | "fold-conv"
    name: str  # the block module, or the first module of a fold pair
    removable: bool
    reason: str = ""  # why not, when not removable
    second: str = ""  # a fold pair's second module
    shortcut: str | None = None  # child of the block kept as the shortcut (None: identity)
    post: list[str] = field(default_factory=list)  # activations after the residual add
    branch: str | None = None  # module whose output is the residual branch (zeroing it = removing)
    stage: str = ""  # the parent module (blocks of one stage share it)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "shortcut": self.shortcut, "post": list(self.post)}

    def __str__(self) -> str:
        if self.kind == "block":
            what = f"block {self.name} (shortcut: {self.shortcut or 'identity'}" + (
                f", then {' '.join(self.post)})" if self.post else ")"
            )
        else:
            what = f"{self.kind} {self.name} -> {self.second}"
        return f"  {what}: " + ("removable" if self.removable else f"kept: {self.reason}")


def _inside(module: str, block: str) -> bool:
    return module == block or module.startswith(block + ".")


class _Flow:
    """Producers and consumers of every traced activation (parameters excluded)."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.builder = builder
        self.producer: dict[int, OpRecord] = {}
        self.consumers: dict[int, list[OpRecord]] = {}
        for op in builder.ops:
            for o in op.outputs:
                self.producer[o] = op
            for i in self.acts(op):
                self.consumers.setdefault(i, []).append(op)

    def acts(self, op: OpRecord) -> list[int]:
        return [i for i in op.inputs if self.builder.values[i].param is None]

    def ancestors(self, value: int, stop: int) -> set[int]:
        seen, todo = set(), [value]
        while todo:
            v = todo.pop()
            if v in seen or v == stop:
                continue
            seen.add(v)
            op = self.producer.get(v)
            if op is not None:
                todo.extend(self.acts(op))
        return seen


def _producer_module(builder: GraphBuilder, value: int, block: str) -> str | None:
    """The deepest module inside ``block`` (not ``block`` itself) whose output is ``value``."""
    best = None
    for name, calls in builder.module_calls.items():
        if name != block and _inside(name, block) and any(value in outs for outs in calls):
            best = name if best is None or len(name) > len(best) else best
    return best


def _child_producing(builder: GraphBuilder, value: int, block: str) -> str | None:
    """The direct child of ``block`` whose (only) call returns ``value``."""
    for name, calls in builder.module_calls.items():
        if name.rpartition(".")[0] == block and name != block and any(value in outs for outs in calls):
            return name
    return None


def _block(builder: GraphBuilder, flow: _Flow, name: str, add: OpRecord) -> DepthUnit:
    stage = name.rpartition(".")[0]
    unit = DepthUnit("block", name, False, stage=stage)
    calls = builder.module_calls.get(name, [])
    ins, outs = builder.module_io[name]
    acts_in = [i for i in ins if builder.values[i].param is None]
    if len(calls) != 1:
        unit.reason = f"it runs {len(calls)} times in one forward pass (its weights are shared)"
        return unit
    if len(acts_in) != 1 or len(outs) != 1:
        unit.reason = "it takes or returns more than one tensor"
        return unit
    x, y = acts_in[0], outs[0]
    if y in builder.outputs:
        unit.reason = "its output is the network output"
        return unit
    a, b = flow.acts(add)[:2]
    shortcut, branch, child = _split_operands(builder, flow, name, x, a, b)
    if shortcut is None:
        unit.reason = (
            "its shortcut is computed by code in its forward, not by a child module, so nothing "
            "netsculpt can keep replaces it"
        )
        return unit
    unit.shortcut, unit.branch = child, _producer_module(builder, branch, name)
    post, v = [], add.outputs[0]
    while v != y:
        users = flow.consumers.get(v, [])
        if len(users) != 1 or users[0].name not in ACTIVATIONS or not _inside(users[0].module, name):
            unit.reason = "something other than an element-wise activation follows its residual add"
            return unit
        post.append(ACTIVATIONS[users[0].name])
        v = users[0].outputs[0]
        if len(post) > 4:
            unit.reason = "more than four ops follow its residual add"
            return unit
    unit.post, unit.removable = post, True
    return unit


def _split_operands(
    builder: GraphBuilder, flow: _Flow, block: str, x: int, a: int, b: int
) -> tuple[int | None, int, str | None]:
    """(shortcut value, branch value, shortcut child or None); shortcut None when neither operand is one."""
    for s, f in ((a, b), (b, a)):
        if not _learns(builder, flow, f, x):
            continue  # a branch without weights is not what a block removal takes away
        if s == x and f != x:
            return s, f, None
        child = _child_producing(builder, s, block)
        if child is None:
            continue
        c_ins, c_outs = builder.module_io[child]
        c_acts = [i for i in c_ins if builder.values[i].param is None]
        once = c_acts == [x] and c_outs == [s] and len(builder.module_calls[child]) == 1
        if once and s not in flow.ancestors(f, x):  # the branch must not read the shortcut's result
            return s, f, child[len(block) + 1 :]
    return None, b, None


def _learns(builder: GraphBuilder, flow: _Flow, value: int, x: int) -> bool:
    """Whether computing ``value`` from ``x`` uses a parameter."""
    for v in flow.ancestors(value, x):
        op = flow.producer.get(v)
        if op is not None and any(builder.values[i].param is not None for i in op.inputs):
            return True
    return False


def find_blocks(builder: GraphBuilder) -> list[DepthUnit]:
    """Every module with a residual add in its own forward, removable or with the reason it is not."""
    flow = _Flow(builder)
    by_module: dict[str, list[OpRecord]] = {}
    for op in builder.ops:
        if op.name in _ADDS and op.module and len(flow.acts(op)) == 2:
            a, b = flow.acts(op)
            va, vb, vo = builder.values[a], builder.values[b], builder.values[op.outputs[0]]
            if va.shape == vb.shape == vo.shape and len(vo.shape) >= 2:
                by_module.setdefault(op.module, []).append(op)
    units = []
    for name, adds in by_module.items():
        if name not in builder.module_io:
            continue
        if len(adds) > 1:
            units.append(DepthUnit("block", name, False, "it has several residual adds", stage=name))
            continue
        units.append(_block(builder, flow, name, adds[0]))
    return units


def find_folds(builder: GraphBuilder) -> list[DepthUnit]:
    """conv/linear -> BatchNorm pairs and conv -> conv pairs connected by nothing else.

    Whether a conv pair merges exactly depends on kernel, stride, padding and groups; surgery checks
    that on the modules (``netsculpt.surgery.fold``), the trace only says which pairs are connected."""
    flow = _Flow(builder)
    units = []
    for op in builder.ops:
        if op.name not in _CONVS or not op.module or len(op.outputs) != 1:
            continue
        users = flow.consumers.get(op.outputs[0], [])
        if len(users) != 1:
            continue
        nxt = users[0]
        if nxt.module == op.module or not nxt.module:
            continue
        once = (
            len(builder.module_calls.get(op.module, [])) == 1
            and len(builder.module_calls.get(nxt.module, [])) == 1
        )
        if nxt.name in _NORMS:
            # a linear's features are its last dim, a norm's channels dim 1: on (N, L, F) they differ
            if op.name == "F.linear" and len(builder.values[op.outputs[0]].shape) != 2:
                continue
            kind = "fold-bn"
        elif nxt.name in _CONVS and nxt.name != "F.linear" and op.name == nxt.name:
            kind = "fold-conv"
        else:
            continue
        unit = DepthUnit(kind, op.module, once, second=nxt.module)
        if not once:
            unit.reason = "one of the two modules runs more than once (shared weights)"
        units.append(unit)
    return units


def find_depth_units(builder: GraphBuilder) -> list[DepthUnit]:
    return find_blocks(builder) + find_folds(builder)
