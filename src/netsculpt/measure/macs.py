"""Parameter and multiply-accumulate (MAC) counts, with a per-layer breakdown.

MACs are counted at the aten level with a ``TorchDispatchMode``, so a ``torch.matmul`` or
``F.scaled_dot_product_attention`` written inside a custom ``forward`` is seen just like a ``nn.Conv2d``.
The per-op formulas are torch's own ``torch.utils.flop_counter`` ones (FLOPs = 2 x MACs), plus the CPU
attention and fused recurrent (LSTM / GRU / RNN) kernels that torch's table lacks. An op left without a
formula that reads a weight matrix is named in a :class:`NetsculptWarning`, so a gap never passes as 0.
See docs/measure.md for the convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from netsculpt.errors import NetsculptWarning, warn_user
from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure._inputs import ExampleInputs, as_tuple, check_module, run_forward
from netsculpt.modes import eval_mode

aten = torch.ops.aten


@dataclass
class LayerMetrics:
    """One module's share of the model: its own parameters and the MACs run while it was innermost."""

    name: str
    type: str
    params: int
    macs: int
    output_shape: tuple[int, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "params": self.params,
            "macs": self.macs,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
        }


def count_params(model: nn.Module) -> int:
    """Number of parameter elements; a parameter shared by several modules is counted once."""
    check_module(model, "count the parameters of", "count them")
    return sum(p.numel() for p in model.parameters())


def _sdpa_macs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> int:
    """QK^T plus AV: ``batch x heads x L x S x (E + Ev)``; key/value heads may be fewer (GQA)."""
    *batch, length, e_qk = query.shape
    source = key.shape[-2]
    return math.prod(batch) * length * source * (e_qk + value.shape[-1])


def _rnn_tokens(inp: torch.Tensor) -> int:
    """Steps x batch of a recurrent kernel's input: (L, B, I), (B, L, I) or packed (sum(batch_sizes), I)."""
    return inp.numel() // inp.shape[-1] if inp.dim() and inp.shape[-1] else 0


def _mkldnn_rnn_layer_macs(
    inp: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, *args: Any, **kw: Any
) -> int:
    """One layer, one direction of the oneDNN LSTM/GRU/RNN that CPU float32 ``nn.LSTM`` runs.

    Every step multiplies the input by ``w_ih`` (gates*H x I) and the hidden state by ``w_hh``
    (gates*H x H): ``tokens * (numel(w_ih) + numel(w_hh))``, the textbook ``L*B*4*(I*H + H*H)`` for an LSTM.
    """
    return _rnn_tokens(inp) * (w_ih.numel() + w_hh.numel())


def _flat_rnn_macs(inp: torch.Tensor, weights: list[torch.Tensor], *args: Any, **kw: Any) -> int:
    """The whole-stack cuDNN / MIOpen kernels: every weight matrix (ih, hh, projection) once per token.

    ``weights`` holds each layer and direction's matrices and bias vectors; only the matrices multiply.
    Every layer and direction sees every token, so tokens times the matrices' total size is exact.
    """
    return _rnn_tokens(inp) * sum(w.numel() for w in weights if w.dim() >= 2)


def _trilinear_macs(i1: torch.Tensor, i2: torch.Tensor, i3: torch.Tensor, *expands: Any, **kw: Any) -> int:
    """``nn.Bilinear``'s kernel: one MAC per point of the joint index space, ``N * out * in1 * in2``.

    Each input is unsqueezed at its ``expand`` positions; the joint space is the broadcast of the three.
    """
    shapes = []
    for t, expand in zip((i1, i2, i3), expands[:3], strict=True):
        shape = list(t.shape)
        for dim in sorted(expand):
            shape.insert(dim, 1)
        shapes.append(shape)
    return math.prod(max(sizes) for sizes in zip(*shapes, strict=True))


def _flops_to_macs(formula: Callable[..., int]) -> Callable[..., int]:
    def macs(*args: Any, out: Any = None, **kwargs: Any) -> int:
        return int(formula(*args, **kwargs, out_val=out)) // 2

    return macs


def _formulas() -> dict[Any, Callable[..., int]]:
    """torch's FLOP formulas turned into MACs, plus kernels torch does not list.

    Torch 2.14 has no entry for ``_scaled_dot_product_flash_attention_for_cpu``, the kernel every
    ``F.scaled_dot_product_attention`` call takes on CPU, so attention would silently count as zero.
    """
    table: dict[Any, Callable[..., int]] = {op: _flops_to_macs(f) for op, f in flop_registry.items()}
    cpu_attention = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_attention is not None:
        table[cpu_attention] = lambda q, k, v, *args, out=None, **kwargs: _sdpa_macs(q, k, v)
    # nn.LSTM / GRU / RNN run one fused kernel per layer and direction (oneDNN, float32 CPU) or per stack
    # (cuDNN, MIOpen); neither is in torch's table nor decomposes, so each would count as 0.
    # matmul of a matrix and a vector runs `mv`, nn.Bilinear runs `_trilinear`: neither is in the table.
    # `_grouped_mm` (mixture-of-experts layers) multiplies each row of `a` by its expert's (K, N) matrix.
    for name, formula in [
        ("mv", lambda mat, vec, *args, **kw: mat.numel()),
        ("_grouped_mm", lambda a, b, *args, **kw: a.numel() * b.shape[-1]),
        ("_trilinear", _trilinear_macs),
        ("mkldnn_rnn_layer", _mkldnn_rnn_layer_macs),
        ("_cudnn_rnn", _flat_rnn_macs),
        ("miopen_rnn", _flat_rnn_macs),
    ]:
        op = getattr(aten, name, None)
        if op is not None:
            table[op] = formula
    return table


_FORMULAS = _formulas()

# Ops that read a weight matrix without multiplying it into an activation: lookups, copies, weight
# normalisation and standardisation, reductions. Views and pointwise ops are recognised by their tags.
_NO_MACS = {
    "embedding", "embedding_bag", "_embedding_bag", "_embedding_bag_forward_only", "index", "index_select",
    "gather", "take", "clone", "_to_copy", "copy_", "_copy_from", "cat", "stack", "lift_fresh", "to_dense",
    "constant_pad_nd", "flip", "roll", "repeat", "_weight_norm_interface", "native_layer_norm",
    "native_group_norm", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "sum", "mean", "var", "var_mean", "std", "std_mean", "linalg_vector_norm", "norm", "amax", "amin", "max",
    "min", "fake_quantize_per_channel_affine", "fake_quantize_per_tensor_affine",
    "_fake_quantize_learnable_per_channel_affine", "quantize_per_channel", "quantize_per_tensor",
}  # fmt: skip
_WARNED: set[str] = set()  # ops already named in a warning: once per process is enough


def _reads_weights(func: Any, args: tuple, kwargs: dict, weights: set[int]) -> bool:
    """Whether an op without a formula takes one of the model's weight matrices into real arithmetic."""
    if func.is_view or torch.Tag.pointwise in func.tags or func.overloadpacket.__name__ in _NO_MACS:
        return False
    leaves, _ = tree_flatten((args, kwargs))
    return any(isinstance(t, torch.Tensor) and id(t) in weights for t in leaves)


class _MacCounter(TorchDispatchMode):
    """Adds each counted op's MACs to the module that is innermost on the call stack.

    ``weights`` are the ids of the model's parameters with two or more dims; an op that reads one but
    has no formula is remembered in ``uncounted`` (op name -> first module it ran in).
    """

    def __init__(self, weights: set[int] | None = None) -> None:
        super().__init__()
        self.stack: list[str] = [""]
        self.macs: dict[str, int] = {}
        self.weights = weights or set()
        self.uncounted: dict[str, str] = {}
        self.read_weights = False  # whether a counted op read one of the model's own parameters
        self.storages: set[int] = set()  # their storages: a linear reads its weight as a transposed view

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        formula = _FORMULAS.get(func.overloadpacket)
        if formula is None:
            # A fused op without a formula may still decompose into counted ones (as FlopCounterMode does).
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
            if self.weights and _reads_weights(func, args, kwargs, self.weights):
                self.uncounted.setdefault(str(func.overloadpacket), self.stack[-1])
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if not self.read_weights and self.storages:  # checked until the first read: one conv settles it
            # counted ops only: copying a network (deepcopy inside forward) reads every parameter too
            leaves, _ = tree_flatten((args, kwargs))
            self.read_weights = any(_storage(t) in self.storages for t in leaves)
        name = self.stack[-1]
        self.macs[name] = self.macs.get(name, 0) + formula(*args, out=out, **kwargs)
        return out


def _storage(t: object) -> int | None:
    if not isinstance(t, torch.Tensor) or t.layout is not torch.strided:
        return None
    return t.untyped_storage().data_ptr()


def _first_shape(output: object) -> tuple[int, ...] | None:
    leaves, _ = tree_flatten(output)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            return tuple(leaf.shape)
    return None


@contextmanager
def _no_mha_fastpath() -> Iterator[None]:
    """Make ``nn.MultiheadAttention`` run its composite path while counting.

    In eval mode without autograd, MHA and ``TransformerEncoderLayer`` call one fused kernel
    (``_native_multi_head_attention``) that no FLOP table covers, so their MACs would count as zero.
    The composite path runs the same projections and attention as separate, countable ops.
    """
    backend = getattr(torch.backends, "mha", None)
    if backend is None:
        yield
        return
    was = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(was)


def count_macs(model: nn.Module, example_inputs: ExampleInputs) -> tuple[int, list[LayerMetrics]]:
    """Total MACs of one eval-mode forward and a per-layer breakdown, in execution order.

    Layers are the leaf modules, plus any other module that owns parameters directly or runs counted
    ops itself (e.g. an attention block calling ``torch.matmul``); MACs go to the innermost module
    running. Modules the forward never called are listed last with ``output_shape=None``, so the
    layers' params always add up to :func:`count_params`. MACs outside every submodule are kept under
    the root's name ``""``. Whatever the forward writes into the model (a cached scale, anchors) is put
    back afterwards (:func:`~netsculpt.graph.snapshot.left_as_found`).
    """
    check_module(model, "count the MACs of", "count its MACs")
    inputs = as_tuple(example_inputs)
    names = {module: name for name, module in model.named_modules()}
    counter = _MacCounter({id(p) for p in model.parameters() if p.dim() >= 2})
    counter.storages = {_storage(p) for p in model.parameters()} - {None, 0}
    order: list[str] = []
    shapes: dict[str, tuple[int, ...] | None] = {}

    def pre_hook(module: nn.Module, _args: Any) -> None:
        name = names.get(module)
        if name is None:  # a copy the forward made of a submodule (deepcopy copies hooks): the caller's
            counter.stack.append(counter.stack[-1] if counter.stack else "")
            return
        counter.stack.append(name)
        if name not in shapes:
            order.append(name)
            shapes[name] = None

    def post_hook(module: nn.Module, _args: Any, output: Any) -> None:
        name = counter.stack.pop()
        if module in names:
            shapes[name] = _first_shape(output)

    handles = []
    for module in names:
        if module is not model:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook, always_call=True))
    try:
        with (
            left_as_found(model, "while its MACs were counted"),
            eval_mode(model),
            torch.no_grad(),
            _no_mha_fastpath(),
            counter,
        ):
            shapes[""] = _first_shape(run_forward(model, inputs))
    finally:
        for handle in handles:
            handle.remove()
    _warn_uncounted(counter.uncounted, type(model).__name__)
    layers = [n for n, m in model.named_modules() if n and _owns_params(m)]
    ran_none = not any(n in shapes for n in layers)
    if layers and counter.storages and not counter.read_weights and not counter.uncounted and ran_none:
        # ultralytics' YOLO object: its forward predicts with a fused copy of the network, so the
        # counts (and any latency) would be the predictor's, not of the model that was passed
        from netsculpt.graph.unrun import detached_forward_error  # graph imports measure: not at the top

        raise detached_forward_error(model, "count or time")
    return sum(counter.macs.values()), _layers(model, order, shapes, counter.macs)


def _owns_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _warn_uncounted(uncounted: dict[str, str], root: str) -> None:
    """Name each weight-reading op that counted 0 MACs, once per process, so the gap is visible."""
    new = {op: where for op, where in uncounted.items() if op not in _WARNED}
    if not new:
        return
    _WARNED.update(new)
    ops = ", ".join(f"`{op}` (in `{where or root}`)" for op, where in new.items())
    warn_user(
        f"MACs of {ops} are not counted: the op multiplies a weight but netsculpt has no MAC formula "
        "for it, so ns.measure and MACs targets see that compute as 0. Please report the op; "
        "a params= target is unaffected.",
        NetsculptWarning,
    )


def _layers(
    model: nn.Module, order: list[str], shapes: dict[str, tuple[int, ...] | None], macs: dict[str, int]
) -> list[LayerMetrics]:
    modules = dict(model.named_modules())
    seen_params: set[int] = set()

    def own_params(module: nn.Module) -> int:
        total = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen_params:
                seen_params.add(id(p))
                total += p.numel()
        return total

    layers: list[LayerMetrics] = []
    if macs.get("", 0) or any(True for _ in model.parameters(recurse=False)):
        layers.append(LayerMetrics("", type(model).__name__, own_params(model), macs.get("", 0), shapes[""]))
    listed = {""}
    for name in [*order, *modules]:
        if name in listed or name not in modules:
            continue
        module = modules[name]
        is_leaf = next(module.children(), None) is None
        params = own_params(module)
        if is_leaf or params or macs.get(name, 0):
            listed.add(name)
            layers.append(
                LayerMetrics(name, type(module).__name__, params, macs.get(name, 0), shapes.get(name))
            )
    return layers
