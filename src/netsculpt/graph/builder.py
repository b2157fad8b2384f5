"""The state channel rules write into while a model is traced.

Rules never build groups themselves: they only state facts — "these channel atoms are the same channel",
"this parameter slice belongs to that channel", "this channel cannot be removed because ...". The builder
records the facts cheaply (numpy arrays, no Python loops per channel); ``groups.py`` resolves them once at
the end with a connected-components pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netsculpt.graph.labels import NO_CHANNEL

ROLE_OUT = "out"  # slice that produces the channel's values: zeroed when the channel is masked
ROLE_IN = "in"  # slice that consumes the channel (e.g. the next conv's input weights)
ROLE_STAT = "stat"  # running statistics: sliced, never zeroed


@dataclass
class Value:
    """One traced tensor: its shape, channel labels and where it came from (for messages)."""

    id: int
    shape: tuple[int, ...]
    labels: np.ndarray
    zero: np.ndarray  # bool, broadcastable to labels: element is 0 once its channels are masked
    origin: str
    param: str | None = None  # fully qualified name when the tensor is a parameter or buffer
    is_buffer: bool = False
    bcast: tuple[bool, ...] = ()  # dims whose elements are copies of one element (expand)
    # a parameter seen through view/reshape/unsqueeze (``gamma.view(1, -1, 1, 1)``): the parameter's
    # value id and, per dim of this value, the parameter dim it shows (None: an inserted size-1 dim, or
    # a size the model's code wrote as a constant, which would not follow pruning)
    view_of: tuple[int, tuple[int | None, ...]] | None = None
    # the view's values are the parameter's plus a term broadcast along its mapped dims (Swin's shift
    # mask added to its gathered bias table): sliced with the parameter, but not zero when it is masked
    view_shifted: bool = False
    # the call that first made masked channels nonzero (``scale * x + bias`` with a scalar bias), kept
    # along the ops that carry them, so "reads channels that are not zero when masked" can say why
    nonzero_by: str | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def has_nonzero_channels(self) -> bool:
        return bool(((self.labels >= 0) & ~np.broadcast_to(self.zero, self.labels.shape)).any())


def note_nonzero(inputs: list[Value], outputs: list[Value], where: str) -> None:
    """Record on each output with nonzero channels the call that made them so (this one, or an input's)."""
    bad = [v for v in inputs if v.has_nonzero_channels()]
    cause = next((v.nonzero_by for v in bad if v.nonzero_by), None) if bad else where
    if cause is None:
        return
    for out in outputs:
        if out.nonzero_by is None and out.has_nonzero_channels():
            out.nonzero_by = cause


def nonzero_note(v: Value) -> str:
    """`` (made nonzero by ...)`` for a reason message, when the trace knows the call."""
    return f" (made nonzero by {v.nonzero_by})" if v.nonzero_by else ""


@dataclass
class Member:
    """A parameter or buffer dimension whose slices belong to channels."""

    name: str  # fully qualified tensor name, e.g. "layer1.0.conv1.weight"
    dim: int
    role: str
    atoms: np.ndarray  # one atom per position along ``dim``

    @property
    def module(self) -> str:
        return self.name.rpartition(".")[0]


@dataclass
class Block:
    atoms: np.ndarray
    reason: str
    soft: bool  # soft: removing the channel is possible but would not be exact (normalisation, scale, ...)


@dataclass
class OpRecord:
    """One traced call as data flow (value ids in and out): what depth units are found from."""

    name: str  # function name (``F.conv2d``, ``Tensor.__iadd__``) or a leaf module's class name
    module: str  # innermost module running the call ("" at the root)
    inputs: list[int]
    outputs: list[int]


@dataclass
class GraphBuilder:
    """Accumulates atoms, equalities, memberships and constraints during one trace."""

    n_atoms: int = 0
    edges: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    members: dict[tuple[str, int], Member] = field(default_factory=dict)
    keep_dims: list[tuple[np.ndarray, int, str]] = field(default_factory=list)
    count_ties: list[tuple[np.ndarray, np.ndarray, str, bool]] = field(default_factory=list)
    splits: list[tuple[np.ndarray, list[int], str]] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    module_io: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # first call
    module_calls: dict[str, list[list[int]]] = field(default_factory=dict)  # output value ids of every call
    outputs: list[int] = field(default_factory=list)
    ops: list[OpRecord] = field(default_factory=list)  # every recorded call, in execution order
    # weights whose outputs lie along another dim than 0 and whose output group is still named after the
    # layer (Hugging Face's Conv1D: weight (in, out)); a transposed conv keeps ``MODULE:in``, as plans name it
    output_dims: dict[str, int] = field(default_factory=dict)
    # (module, attribute, value id, dim): an int attribute the model's code writes as a view size (a head
    # count, graph/rules/heads.py); the surgery sets it to that dim's pruned size
    attr_sizes: list[tuple[str, str, int, int]] = field(default_factory=list)

    # -- atoms and equalities -------------------------------------------------------------------
    def fresh(self, n: int) -> np.ndarray:
        """``n`` new channel atoms."""
        atoms = np.arange(self.n_atoms, self.n_atoms + n, dtype=np.int64)
        self.n_atoms += n
        return atoms

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Declare ``a[i]`` and ``b[i]`` the same channel wherever both are atoms."""
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        keep = (a >= 0) & (b >= 0) & (a != b)
        if keep.any():
            self.edges.append((a[keep].ravel(), b[keep].ravel()))

    def couple(self, a: np.ndarray, b: np.ndarray, reason: str) -> np.ndarray:
        """Union two label arrays element-wise; an atom facing a non-channel element is blocked.

        Returns the merged labels (an atom wherever either side has one).
        """
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        self.union(a, b)
        lonely = (a >= 0) != (b >= 0)
        if lonely.any():
            self.block(np.where(a >= 0, a, b)[lonely], reason)
        return np.where(a >= 0, a, b)

    def tie_across(self, labels: np.ndarray, outer_dims: list[int], inner_dim: int) -> None:
        """Make position ``j`` of ``inner_dim`` one channel across every index of ``outer_dims``.

        Used where a channel dimension is viewed as (groups, per_group): the group count is a constant in
        the model's code, so every group must lose the same positions.
        """
        dims = [*outer_dims, inner_dim]
        rest = [d for d in range(labels.ndim) if d not in dims]
        moved = np.moveaxis(labels, dims, list(range(len(dims))))
        n_inner = moved.shape[len(outer_dims)]
        flat = moved.reshape(-1, n_inner, *moved.shape[len(dims) :]) if rest else moved.reshape(-1, n_inner)
        for k in range(1, flat.shape[0]):
            self.union(flat[0], flat[k])

    # -- constraints ----------------------------------------------------------------------------
    def block(self, labels: np.ndarray, reason: str, *, soft: bool = False) -> None:
        """Forbid removing the channels in ``labels`` (soft: allowed only when inexact pruning is allowed)."""
        atoms = np.asarray(labels).ravel()
        atoms = atoms[atoms >= 0]
        if atoms.size:
            self.blocks.append(Block(atoms, reason, soft))

    def tie_count(self, a: np.ndarray, b: np.ndarray, reason: str, same_set: bool = False) -> None:
        """Require that pruning leaves ``a`` and ``b`` (two 1-D atom lists) with equal lengths.

        Checked after all equalities are known: fine when both hold the same channels (in any order,
        e.g. a channel shuffle; ``same_set``: the same channels, each any number of times, for a size
        derived from a count); otherwise every channel of both is pinned.
        """
        self.count_ties.append((np.asarray(a), np.asarray(b), reason, same_set))

    def keep_dim(self, labels: np.ndarray, dim: int, reason: str) -> None:
        """Require that no removable channel shrinks ``dim`` of a tensor with these labels.

        Checked after all equalities are known: a channel that spans every index of ``dim`` (e.g. one
        head-dim position repeated in every head) is fine; one that owns positions along it is blocked.
        """
        if labels.ndim and labels.shape[dim] > 1:
            self.keep_dims.append((labels, dim, reason))

    def consume(self, labels: np.ndarray, zero: np.ndarray, reason: str) -> None:
        """A channel-mixing op reads these elements: channels not zero under masking become inexact."""
        labels, zero = np.broadcast_arrays(np.asarray(labels), np.asarray(zero))
        bad = (labels >= 0) & ~zero
        if bad.any():
            self.block(labels[bad], reason, soft=True)

    # -- parameters -----------------------------------------------------------------------------
    def member(self, value: Value, dim: int, role: str, *, buffer_produces: bool = False) -> np.ndarray:
        """Atoms for dim ``dim`` of a parameter/buffer value (created once, shared by every use).

        Buffers are statistics (sliced, never zeroed by masking) unless ``buffer_produces``: a frozen
        affine stored as buffers (torchvision's ``FrozenBatchNorm2d``) produces its channels' values.
        """
        if value.param is None:
            return np.full(value.shape[dim], NO_CHANNEL, dtype=np.int64)
        dim = dim % value.ndim
        key = (value.param, dim)
        found = self.members.get(key)
        if found is None:
            found = Member(
                value.param,
                dim,
                ROLE_STAT if value.is_buffer and not buffer_produces else role,
                self.fresh(value.shape[dim]),
            )
            self.members[key] = found
        return found.atoms
