"""Trace a model by running it once and observing every torch call (``TorchFunctionMode``).

Why not ``torch.fx`` or ``torch.export``: symbolic tracing fails on shape-dependent Python control flow
(padding in Swin, asserts in ViT) and export decomposes the network into aten ops and takes seconds. A
real forward pass under a function mode sees the public API calls (``F.conv2d``, ``torch.cat``,
``Tensor.view`` ...) with concrete shapes, follows any Python control flow the example input takes, and
costs about one eager forward. See docs/design.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError, TraceError
from netsculpt.graph import registry
from netsculpt.graph.builder import GraphBuilder, OpRecord, Value, note_nonzero
from netsculpt.graph.compiled import refuse_compiled
from netsculpt.graph.labels import plain
from netsculpt.graph.outputs import pin_outputs
from netsculpt.graph.rules.heads import mark_size_attributes
from netsculpt.graph.sizes import tie_sizes, wrap_shape
from netsculpt.graph.snapshot import ModuleSnapshot
from netsculpt.graph.trace_errors import forward_failure_message, untraced_failure
from netsculpt.measure._inputs import as_tuple as _as_args
from netsculpt.modes import set_training

_IGNORED_NAMES = {
    "size",
    "dim",
    "numel",
    "__len__",
    "is_floating_point",
    "is_complex",
    "element_size",
    "stride",
}


_SHAPE_READS = {torch.Tensor.size, torch.Tensor.shape.__get__}

# in-place writes that return None: recorded anyway, since they change what the target tensor holds
_IN_PLACE_WRITES = {torch.Tensor.__setitem__}


def func_name(func: Any) -> str:
    if getattr(func, "__name__", None) == "__get__" and hasattr(func, "__self__"):
        return f"Tensor.{func.__self__.__name__}"
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    qual = qual.replace("_VariableFunctionsClass.", "").replace("TensorBase.", "Tensor.")
    module = getattr(func, "__module__", None)
    if module in (None, "torch") or qual.startswith("Tensor."):
        return qual if qual.startswith("Tensor.") else f"torch.{qual}"
    module = {"torch.nn.functional": "F", "torch._C._nn": "F"}.get(module, module)
    return f"{module}.{qual}"


def _functions(*names: str) -> set[Any]:
    found = set()
    for n in names:
        for owner in (torch, torch.Tensor, torch.nn.functional, torch._C._nn):
            f = getattr(owner, n, None)
            if f is not None:
                found.add(f)
    return found


# Pure, compute-heavy functions whose outputs the tracer only needs the shape of. Norms keep the input's
# shape; the others get theirs from a run on meta tensors (shape inference only).
_SAME_SHAPE = _functions("batch_norm", "layer_norm", "group_norm", "instance_norm")
_SHAPE_ONLY = _SAME_SHAPE | _functions(
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "linear",
    "matmul",
    "mm",
    "bmm",
    "addmm",
    "baddbmm",
    "scaled_dot_product_attention",
    "einsum",
)


def _to_meta(x: Any) -> Any:
    return x.to("meta") if isinstance(x, torch.Tensor) else x


def _shape_only_call(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run ``func`` on meta tensors for the output shape, then return zeros of that shape."""
    if func in _SAME_SHAPE:
        return torch.zeros_like(args[0])
    out = func(*_substitute(args, _to_meta), **{k: _substitute(v, _to_meta) for k, v in kwargs.items()})
    if isinstance(out, torch.Tensor):
        return torch.zeros(out.shape, dtype=out.dtype)
    return type(out)(torch.zeros(o.shape, dtype=o.dtype) if isinstance(o, torch.Tensor) else o for o in out)


class _Tracer(TorchFunctionMode):
    def __init__(self, model: torch.nn.Module, builder: GraphBuilder, shapes_only: bool = False) -> None:
        super().__init__()
        self.shapes_only = shapes_only
        self.builder = builder
        self.by_tensor: dict[int, Value] = {}
        self.alive: list[torch.Tensor] = []  # keep traced tensors alive so ids are never reused
        self.module_names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.params: dict[int, tuple[str, bool]] = {}
        for n, p in model.named_parameters(remove_duplicate=True):
            self.params[id(p)] = (n, False)
        for n, b in model.named_buffers(remove_duplicate=True):
            self.params[id(b)] = (n, True)
        self.stack: list[torch.nn.Module] = []
        self.leaf_depth = 0
        self.error: BaseException | None = None
        self.error_where = ""  # the call that failed: the forward runs on, so the stack moves past it

    # -- values ---------------------------------------------------------------------------------
    def new_value(self, t: torch.Tensor, origin: str, labels: np.ndarray | None = None) -> Value:
        shape = tuple(t.shape)
        lab = plain(len(shape)) if labels is None else labels
        v = Value(len(self.builder.values), shape, lab, np.zeros((1,) * len(shape), bool), origin)
        v.bcast = (False,) * len(shape)
        self.builder.values.append(v)
        self.by_tensor[id(t)] = v
        self.alive.append(t)
        return v

    def value_of(self, t: torch.Tensor, where: str) -> Value:
        v = self.by_tensor.get(id(t))
        if v is not None and v.shape == tuple(t.shape):
            return v
        known = self.params.get(id(t))
        if known is not None:
            v = self.new_value(t, f"{'buffer' if known[1] else 'parameter'} `{known[0]}`")
            v.param, v.is_buffer = known
            # not zero under masking until a rule makes it a channel member (label_param_operand,
            # ctx.member): a scalar parameter such as StarReLU's bias stays what it is
            return v
        return self.new_value(t, f"a tensor created outside the traced calls, first used by {where}")

    @property
    def current_module(self) -> str:
        return self.module_names.get(id(self.stack[-1]), "") if self.stack else ""

    # -- the mode -------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.shapes_only and func in _SHAPE_ONLY and not self.leaf_depth:
            out = _shape_only_call(func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        if self.leaf_depth or self.error is not None:
            return out
        try:
            if func in _SHAPE_READS and args and isinstance(args[0], torch.Tensor):
                return self.wrap_shape_read(args, kwargs, out)
            call = self.record(func, args, kwargs, out)
            if call is not None:
                tie_sizes(self.builder, call)
        except Exception as exc:  # surfaced after the forward pass with context
            self.error = exc
            self.error_where = f"`{func_name(func)}` in `{self.current_module or '<root>'}`"
        return out

    def wrap_shape_read(self, args: tuple, kwargs: dict, out: Any) -> Any:
        """Channel dims read from ``.shape``/``.size()`` come back as ``ChannelCount`` (graph/sizes.py)."""
        v = self.by_tensor.get(id(args[0]))
        if v is None or v.shape != tuple(args[0].shape):
            return out
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return wrap_shape(out, v, dim if isinstance(dim, int) else None)

    def record(self, func: Any, args: tuple, kwargs: dict, out: Any) -> registry.Call | None:
        name = func_name(func)
        out_tensors = (
            [out]
            if isinstance(out, torch.Tensor)
            else [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        )
        if name.rsplit(".", 1)[-1] in _IGNORED_NAMES or not (out_tensors or func in _IN_PLACE_WRITES):
            return None
        module = self.current_module
        where = f"`{name}` in `{module or '<root>'}`"
        inputs: list[Value] = []

        def sub(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                v = self.value_of(x, where)
                inputs.append(v)
                return v
            return x

        vargs = _substitute(args, sub)
        vkwargs = {k: _substitute(v, sub) for k, v in kwargs.items()}
        outputs = [self.new_value(t, f"output of {where}") for t in out_tensors]
        owner = self.stack[-1] if self.stack else None  # the innermost module running the call
        call = registry.Call(func, name, vargs, vkwargs, outputs, module, owner, inputs=inputs)
        rule = None
        if name.startswith("Tensor.") and getattr(func, "__name__", None) == "__get__":
            rule = registry.PROPERTY_RULES.get(name.removeprefix("Tensor."))
        if rule is None:
            rule = registry.FUNCTION_RULES.get(func)
        if rule is None:
            rule = registry.FUNCTION_RULES["__unknown__"]
        rule(self.builder, call)
        note_nonzero(inputs, outputs, where)
        self.builder.ops.append(OpRecord(name, module, [v.id for v in inputs], [o.id for o in outputs]))
        return call

    # -- module hooks ---------------------------------------------------------------------------
    def pre_hook(self, module: torch.nn.Module, args: tuple) -> None:
        if id(module) not in self.module_names:
            return
        self.stack.append(module)
        if self.leaf_depth or registry.module_rule_for(module) is not None:
            self.leaf_depth += 1

    def post_hook(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if id(module) not in self.module_names:
            return
        rule = registry.module_rule_for(module)
        if self.leaf_depth:
            self.leaf_depth -= 1
        if rule is not None and self.leaf_depth == 0 and self.error is None:
            try:
                self.record_module(module, rule, args, output)
            except Exception as exc:
                self.error = exc
                self.error_where = f"module `{self.module_names[id(module)] or '<root>'}`"
        name = self.module_names[id(module)]
        self.stack.pop()
        outs = [
            self.by_tensor[id(t)].id
            for t in tree_flatten(output)[0]
            if isinstance(t, torch.Tensor) and id(t) in self.by_tensor
        ]
        self.builder.module_calls.setdefault(name, []).append(outs)
        if name not in self.builder.module_io:
            ins = [self.by_tensor[id(t)].id for t in tree_flatten(args)[0] if id(t) in self.by_tensor]
            self.builder.module_io[name] = (ins, outs)

    def record_module(self, module: torch.nn.Module, rule: registry.Rule, args: tuple, output: Any) -> None:
        name = self.module_names[id(module)]
        where = f"module `{name}` ({type(module).__name__})"
        inputs = [self.value_of(t, where) for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        outputs = [self.new_value(t, f"output of {where}") for t in outs]
        call = registry.Call(module, type(module).__name__, tuple(inputs), {}, outputs, name, module, inputs)
        own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        call.params = {n: self.value_of(t, where) for n, t in own if t is not None}
        rule(self.builder, call)
        note_nonzero(inputs, outputs, where)
        self.builder.ops.append(OpRecord(call.name, name, [v.id for v in inputs], [o.id for o in outputs]))


def _substitute(x: Any, sub: Any) -> Any:
    """Replace tensors inside (nested) tuples/lists/dicts; cheaper than a general pytree map."""
    if isinstance(x, torch.Tensor):
        return sub(x)
    if isinstance(x, tuple | list):
        return type(x)(_substitute(i, sub) for i in x) if not hasattr(x, "_fields") else x
    if isinstance(x, dict):
        return {k: _substitute(v, sub) for k, v in x.items()}
    return x


def as_tuple(example_inputs: Any) -> tuple:
    """``forward``'s positional arguments: a Tensor, or a tuple of arguments of any structure."""
    try:
        return _as_args(example_inputs)
    except ConfigError as exc:
        raise TraceError(str(exc)) from None


def training_branches_mode(model: torch.nn.Module) -> None:
    """Train mode for the model's own control flow (``if self.training: aux = self.aux1(x)``), eval mode
    for batch norm and dropout, so a batch of one runs and nothing random or stateful happens."""
    for module in model.modules():  # flags only: a class's own train() may mean "start training"
        module.training = not isinstance(
            module, torch.nn.modules.batchnorm._NormBase | torch.nn.modules.dropout._DropoutNd
        )


def run_trace(
    model: torch.nn.Module, example_inputs: Any, execute: str = "shapes", *, training: bool = False
) -> GraphBuilder:
    """Run ``model`` once on ``example_inputs`` in eval mode and return the recorded channel facts.

    ``training=True`` runs it in train mode instead (for branches only training runs, such as
    GoogLeNet's and Inception-v3's auxiliary heads); the model's flags and buffers are restored either way.

    ``execute="shapes"`` (default) skips the arithmetic of heavy pure ops (conv, linear, matmul, norms,
    attention): their outputs are zeros of the right shape, which is all channel tracing needs, and it
    makes tracing several times cheaper than a forward pass. Like any trace by execution it follows the
    control-flow path of this input; if anything fails in that mode the trace is redone with real
    arithmetic (``execute="real"``).
    """
    refuse_compiled(model)
    materialised(model, "trace", TraceError)  # before the forward that would create their weights
    if execute == "shapes":
        try:
            return _run_trace(model, example_inputs, shapes_only=True, training=training)
        except TraceError:
            pass  # retried outside the handler, so a failure of the real run is not chained to this one
        return _run_trace(model, example_inputs, shapes_only=False, training=training)
    if execute != "real":
        raise TraceError(f"execute must be 'shapes' or 'real', got {execute!r}")
    return _run_trace(model, example_inputs, shapes_only=False, training=training)


def _run_trace(
    model: torch.nn.Module, example_inputs: Any, shapes_only: bool, training: bool = False
) -> GraphBuilder:
    from netsculpt.graph import rules  # noqa: F401  (registers the built-in rules)

    inputs = as_tuple(example_inputs)
    builder = GraphBuilder()
    tracer = _Tracer(model, builder, shapes_only)
    for i, t in enumerate(tree_flatten(inputs)[0]):
        if isinstance(t, torch.Tensor) and id(t) not in tracer.by_tensor:
            tracer.new_value(t, f"network input {i}")
    snapshot = ModuleSnapshot(model)  # restores attributes, buffers and train/eval flags afterwards
    mark_size_attributes(model)  # ``self.num_heads`` read as a view size is then known (rules/heads.py)
    if training:
        training_branches_mode(model)
    else:
        set_training(model, False)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook)
    post = torch.nn.modules.module.register_module_forward_hook(tracer.post_hook)
    failure: tuple[Exception, str, torch.nn.Module | None] | None = None
    try:
        with torch.no_grad(), tracer:
            output = model(*inputs)
    except Exception as exc:
        where = tracer.current_module
        failure = exc, where, dict(model.named_modules()).get(where) if tracer.stack else None
    finally:
        pre.remove()
        post.remove()
        snapshot.restore()
    if failure is not None:
        exc, where, module = failure
        # the real-arithmetic run's error is the one shown: only then is the model run again untraced
        mode = training_branches_mode if training else lambda m: set_training(m, False)
        untraced = True if shapes_only else untraced_failure(model, inputs, mode)
        raise TraceError(forward_failure_message(exc, where, inputs, module, untraced)) from exc
    if tracer.error is not None:
        raise TraceError(
            f"netsculpt failed while following channels through {tracer.error_where}: "
            f"{type(tracer.error).__name__}: {tracer.error}. Pass ignored=[...] for that module or register "
            "a channel rule for it (docs/engine.md)."
        ) from tracer.error
    pin_outputs(builder, tracer.by_tensor, output)
    return builder
