"""Resolve traced channel facts into ChannelGroups.

All equalities are solved at once with a connected-components pass (scipy) over channel atoms: each
component is one channel that must be removed as a unit. Channels that touch exactly the same parameter
slots form one ChannelGroup (a conv's output channels together with its BatchNorm and the next conv's
input channels; a whole residual stage; ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from netsculpt.graph.builder import ROLE_OUT, GraphBuilder, Member


@dataclass
class GroupMember:
    """One parameter/buffer dimension of a group: ``positions[i]`` belongs to channel ``channels[i]``."""

    name: str
    dim: int
    role: str
    positions: np.ndarray
    channels: np.ndarray

    @property
    def module(self) -> str:
        return self.name.rpartition(".")[0]

    def slices(self, n_channels: int) -> list[np.ndarray]:
        """Positions of each channel along ``dim`` (a flattened Linear input owns many per channel)."""
        order = np.argsort(self.channels, kind="stable")
        bounds = np.searchsorted(self.channels[order], np.arange(n_channels + 1))
        return [self.positions[order[bounds[i] : bounds[i + 1]]] for i in range(n_channels)]


@dataclass
class ChannelGroup:
    """Channels that must be removed together, and every tensor slice each channel owns."""

    id: str
    size: int
    members: list[GroupMember]
    components: np.ndarray  # component id of each channel
    prunable: np.ndarray  # bool per channel
    reasons: list[str] = field(default_factory=list)

    @property
    def n_prunable(self) -> int:
        return int(self.prunable.sum())

    def __str__(self) -> str:
        state = (
            f"{self.n_prunable}/{self.size} prunable"
            if self.n_prunable
            else "not prunable: " + (self.reasons[0] if self.reasons else "no channel can be removed")
        )
        parts = ", ".join(f"{m.name}[{m.dim}]" for m in self.members[:6])
        more = f" (+{len(self.members) - 6} more)" if len(self.members) > 6 else ""
        return f"{self.id}: {self.size} channels, {state}\n    {parts}{more}"


def _components(builder: GraphBuilder, extra: list[tuple[np.ndarray, np.ndarray]] = ()) -> np.ndarray:
    n = builder.n_atoms
    edges = [*builder.edges, *extra]
    if not edges:
        return np.arange(n)
    a = np.concatenate([e[0] for e in edges])
    b = np.concatenate([e[1] for e in edges])
    graph = coo_matrix((np.ones(a.shape[0], np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _spanning_violations(comp_labels: np.ndarray, dim: int) -> np.ndarray:
    """Components that own some but not all indices along ``dim`` (they would shrink it)."""
    moved = np.moveaxis(comp_labels, dim, 0).reshape(comp_labels.shape[dim], -1)
    n = moved.shape[0]
    rows = np.repeat(np.arange(n), moved.shape[1])
    flat = moved.ravel()
    keep = flat >= 0
    pairs = np.unique(np.stack([flat[keep], rows[keep]]), axis=1)
    comps, counts = np.unique(pairs[0], return_counts=True)
    return comps[counts < n]


def _ragged(comp_labels: np.ndarray) -> np.ndarray:
    """Components whose elements do not form whole slices along a single dimension."""
    bad = []
    for c in np.unique(comp_labels[comp_labels >= 0]):
        mask = comp_labels == c
        ok = False
        for d in range(mask.ndim):
            if mask.shape[d] == 1:
                continue
            others = tuple(i for i in range(mask.ndim) if i != d)
            line = mask.any(axis=others, keepdims=True)
            if np.array_equal(np.broadcast_to(line, mask.shape), mask):
                ok = True
                break
        if not ok:
            bad.append(c)
    return np.asarray(bad, dtype=np.int64)


def _first_reasons(comp: np.ndarray, blocks: list) -> dict[int, str]:
    """Component -> the first reason (in trace order) that pinned it, in one vectorised pass."""
    if not blocks:
        return {}
    comps = comp[np.concatenate([b.atoms for b in blocks])]
    which = np.concatenate([np.full(b.atoms.shape[0], i) for i, b in enumerate(blocks)])
    uniq, first = np.unique(comps, return_index=True)
    return dict(zip(uniq.tolist(), (blocks[i].reason for i in which[first].tolist())))


@dataclass
class Resolution:
    comp: np.ndarray  # atom -> component
    hard: dict[int, str]
    soft: dict[int, str]


def _count_pairs(builder: GraphBuilder, comp: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair the channels of two disjoint channel sets whose counts the model's code ties.

    SegFormer / PVT reshape the sequence-reduction conv's output with the count read from the trunk
    (``x.reshape(B, num_channels, -1)``): two groups of one size. Removing position k of both together
    keeps the counts equal (each component then owns the same positions on both sides), so they become
    one group instead of both being pinned. Ties that overlap, or hold non-channel elements, stay checks."""
    pairs = []
    for a, b, _reason, same_set in builder.count_ties:
        if same_set or a.shape != b.shape or a.ndim != 1 or (a < 0).any() or (b < 0).any():
            continue
        ca, cb = comp[a], comp[b]
        if not np.intersect1d(ca, cb).size:
            pairs.append((a, b))
    return pairs


def resolve(builder: GraphBuilder) -> Resolution:
    """Solve equalities and constraints: which component each atom is, and which are pinned and why."""
    comp = _components(builder)
    paired = _count_pairs(builder, comp)
    if paired:
        comp = _components(builder, paired)
    hard = _first_reasons(comp, [b for b in builder.blocks if not b.soft])
    soft = _first_reasons(comp, [b for b in builder.blocks if b.soft])
    for labels, dim, reason in builder.keep_dims:
        mapped = np.where(labels >= 0, comp[np.maximum(labels, 0)], -1)
        for c in _spanning_violations(mapped, dim):
            hard.setdefault(int(c), reason)
    for a, b, reason, same_set in builder.count_ties:
        ca, cb = (np.sort(np.where(x >= 0, comp[np.maximum(x, 0)], -1)) for x in (a, b))
        if same_set:
            ca, cb = np.unique(ca[ca >= 0]), np.unique(cb[cb >= 0])
        if not np.array_equal(ca, cb):
            for c in np.unique(np.concatenate([ca, cb])):
                if c >= 0:
                    hard.setdefault(int(c), reason)
    for v in builder.values:
        if sum(n > 1 for n in v.labels.shape) > 1 and (v.labels >= 0).any():
            mapped = np.where(v.labels >= 0, comp[np.maximum(v.labels, 0)], -1)
            for c in _ragged(mapped):
                hard.setdefault(int(c), f"removing it would leave a ragged tensor ({v.origin})")
    return Resolution(comp, hard, soft)


def build_groups(
    builder: GraphBuilder, res: Resolution, *, allow_inexact: bool, ignored: tuple[str, ...] = ()
) -> list[ChannelGroup]:
    """Group channels by the exact set of parameter slots they touch."""
    members: list[Member] = list(builder.members.values())
    if not members:
        return []
    ignored_comps: dict[int, str] = {}
    for m in members:
        if any(m.name == p or m.name.startswith(p + ".") for p in ignored):
            for c in np.unique(res.comp[m.atoms]):
                ignored_comps.setdefault(int(c), f"`{m.module}` is in ignored")
    member_idx = np.concatenate([np.full(m.atoms.shape[0], i) for i, m in enumerate(members)])
    comps = np.concatenate([res.comp[m.atoms] for m in members])
    # unique (component, member) pairs, sorted by component: a component's signature is its member list
    keys = np.sort(comps * len(members) + member_idx)  # sort-based unique: much faster than hashing here
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    pair_comp, pair_member = keys // len(members), keys % len(members)
    starts = np.flatnonzero(np.r_[True, pair_comp[1:] != pair_comp[:-1]])
    comp_list = pair_comp[starts]
    # group components by signature without a Python loop per channel: two independent 64-bit random
    # projections of the member set (sums wrap mod 2**64); equal sets give equal hashes, and distinct sets
    # collide with probability ~2**-128
    rng = np.random.default_rng(12345)
    weights = rng.integers(0, 2**63, size=(2, len(members)), dtype=np.uint64)
    h1 = np.add.reduceat(weights[0][pair_member], starts)
    h2 = np.add.reduceat(weights[1][pair_member], starts)
    _, first, inverse = np.unique(np.stack([h1, h2], axis=1), axis=0, return_index=True, return_inverse=True)
    bounds = np.r_[starts, pair_comp.shape[0]]
    by_signature: dict[tuple[int, ...], list[int]] = {}
    order = np.argsort(inverse.ravel(), kind="stable")
    split_at = np.flatnonzero(np.diff(inverse.ravel()[order])) + 1
    for idx in np.split(order, split_at):
        k = int(idx[0])
        sig = tuple(pair_member[bounds[k] : bounds[k + 1]].tolist())
        by_signature[sig] = comp_list[idx].tolist()
    del first
    n_comps = int(res.comp.max(initial=0)) + 1
    channel_of = np.full(n_comps, -1, dtype=np.int64)
    pinned_mask = np.zeros(n_comps, dtype=bool)
    blocked = [res.hard, ignored_comps] + ([] if allow_inexact else [res.soft])
    for d in blocked:
        if d:
            pinned_mask[np.fromiter(d.keys(), dtype=np.int64, count=len(d))] = True
    groups: list[ChannelGroup] = []
    used_ids: set[str] = set()
    for sig, comp_ids_list in sorted(by_signature.items(), key=lambda kv: kv[0]):
        anchor = next((members[i] for i in sig if members[i].role == ROLE_OUT), members[sig[0]])
        # order channels by their first position in the anchor member
        anchor_comps = res.comp[anchor.atoms]
        uniq, first = np.unique(anchor_comps, return_index=True)
        comp_ids = np.asarray(comp_ids_list, dtype=np.int64)
        order_key = first[np.searchsorted(uniq, comp_ids)]
        comp_ids = comp_ids[np.argsort(order_key, kind="stable")]
        channel_of[comp_ids] = np.arange(comp_ids.shape[0])
        gmembers = []
        for i in sig:
            m = members[i]
            chans = channel_of[res.comp[m.atoms]]
            sel = np.flatnonzero(chans >= 0)
            gmembers.append(GroupMember(m.name, m.dim, m.role, sel, chans[sel]))
        channel_of[comp_ids] = -1
        pinned = pinned_mask[comp_ids]
        prunable = ~pinned
        reasons: list[str] = []
        for c in comp_ids[pinned].tolist():
            why = res.hard.get(c) or ignored_comps.get(c) or res.soft.get(c)
            if why is not None and why not in reasons:
                reasons.append(why)
        named = anchor.name.endswith((".weight", ".weight_ih_l0"))  # a recurrent layer's first weight
        gid = anchor.module if named else anchor.name
        if anchor.role != ROLE_OUT or anchor.dim != builder.output_dims.get(anchor.name, 0):
            gid = f"{anchor.module}:in" if named else f"{anchor.name}:{anchor.dim}"
        base, n = gid, 2
        while gid in used_ids:
            gid, n = f"{base}#{n}", n + 1
        used_ids.add(gid)
        groups.append(ChannelGroup(gid, comp_ids.shape[0], gmembers, comp_ids, prunable, reasons))
    return groups
