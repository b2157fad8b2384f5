"""A candidate's widths as a graph of the traced model's layers, and as a plain width vector.

Nodes are the modules that own parameters in any channel group (convolutions, linear layers,
normalisations, ...); two nodes are joined when they share a channel group, i.e. one's output channels
are the other's input channels (or the same residual stream): exactly the data flow pruning acts on.
The structure is fixed by the trace; a candidate only changes node features — kept ratio of the
node's output and input channels, its share of the candidate's MACs, its kept parameters — beside fixed
ones (layer type, position, share of the unpruned MACs). Everything is computed from the search
space's exact cost model, without building a pruned model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.graph.builder import ROLE_IN, ROLE_OUT

TYPES = ("conv", "grouped_conv", "linear", "norm", "other")
FEATURES = (*TYPES, "out_kept", "in_kept", "macs_share", "base_macs_share", "params_kept", "position")
# Extended set: what the candidate keeps of each layer's own MACs, the candidate's total MACs (the same on
# every node: shares alone hide it) and the kept output width in channels (scaled by the widest group).
EXTENDED = ("macs_kept", "total_macs", "out_width")
FEATURE_VERSION = 1


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "grouped_conv" if module.groups > 1 else "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    return "norm" if isinstance(module, norms) else "other"


class GraphFeatures:
    """Turn width vectors of ``space`` (a :class:`~netsculpt.search.SearchSpace`) into GCN inputs."""

    def __init__(self, space: Any, model: nn.Module, extended: bool = False) -> None:
        self.space, self.extended = space, extended
        self.names = (*FEATURES, *EXTENDED) if extended else FEATURES
        counted = space._counted  # prefix-sum cost model: exact per-tensor sizes of any widths
        names = space.cost_model.names
        modules = dict(model.named_modules())
        order = {name: i for i, name in enumerate(modules)}
        owners = sorted(
            {m.name.rpartition(".")[0] for g in space.graph.groups for m in g.members if m.name in names}
        )
        owners = [o for o in owners if o in modules]
        owners.sort(key=lambda o: order[o])
        self.nodes = owners
        index = {o: i for i, o in enumerate(owners)}
        n = len(owners)
        adjacency = np.eye(n)
        prunable = {gid: i for i, gid in enumerate(space.ids)}
        self.out_group = np.full(n, -1)  # position in the width vector of each node's out / in group
        self.in_group = np.full(n, -1)
        for g in space.graph.groups:
            members = [index[m.module] for m in g.members if m.module in index]
            for a in members:
                adjacency[a, members] = 1.0
            if g.id not in prunable:
                continue
            for m in g.members:
                if m.module in index and m.name.endswith("weight"):
                    if m.role == ROLE_OUT and m.dim == 0:
                        self.out_group[index[m.module]] = prunable[g.id]
                    elif m.role == ROLE_IN and m.dim == 1:
                        self.in_group[index[m.module]] = prunable[g.id]
        degree = adjacency.sum(1)
        norm = adjacency / np.sqrt(np.outer(degree, degree))  # D^-1/2 (A + I) D^-1/2
        self.adjacency = torch.tensor(norm, dtype=torch.float32)
        self.param_index = [[i for i, p in enumerate(names) if p.rpartition(".")[0] == o] for o in owners]
        self.rates, self.static, self.counted = counted.rates, counted.static, counted
        self.fixed_macs, self.base_macs = counted.fixed, counted.base_macs
        base = counted.rates * counted.static
        self.base_share = np.array([base[ix].sum() for ix in self.param_index]) / self.base_macs
        self.node_base_macs = self.base_share * self.base_macs  # 0 for layers without MACs (norms)
        self.widest = float(max(space.sizes)) if len(space.sizes) else 1.0
        onehot = np.zeros((n, len(TYPES)))
        for i, o in enumerate(owners):
            onehot[i, TYPES.index(_kind(modules[o]))] = 1.0
        position = np.arange(n) / max(n - 1, 1)
        self.static_features = np.column_stack([onehot, position])

    @property
    def n_features(self) -> int:
        return len(self.names)

    def graph(self, counts_list: Sequence[np.ndarray]) -> torch.Tensor:
        """(candidates, nodes, features) node features."""
        out = []
        for counts in counts_list:
            ratios = self.space.ratios(np.asarray(counts))
            padded = np.append(ratios, 1.0)  # index -1: a group that is not searched keeps everything
            numels = self.counted.numels(np.asarray(counts))
            macs = self.rates * numels
            total = self.fixed_macs + macs.sum()
            share = np.array([macs[ix].sum() for ix in self.param_index]) / total
            kept = np.array([numels[ix].sum() / max(self.static[ix].sum(), 1.0) for ix in self.param_index])
            dynamic = np.column_stack(
                [padded[self.out_group], padded[self.in_group], share, self.base_share, kept]
            )
            columns = [self.static_features[:, :-1], dynamic, self.static_features[:, -1:]]
            if self.extended:
                node_macs = np.array([macs[ix].sum() for ix in self.param_index])
                sizes = np.append(np.asarray(self.space.sizes, dtype=float), np.nan)[self.out_group]
                width = np.where(self.out_group >= 0, padded[self.out_group] * sizes / self.widest, 1.0)
                has_macs = self.node_base_macs > 0  # a norm has none: what it keeps of its parameters
                own = np.where(has_macs, node_macs / np.where(has_macs, self.node_base_macs, 1.0), kept)
                columns += [own, np.full(len(share), total / self.base_macs), width]
            out.append(np.column_stack(columns))
        return torch.tensor(np.array(out), dtype=torch.float32)

    def vector(self, counts_list: Sequence[np.ndarray]) -> torch.Tensor:
        """(candidates, groups) keep ratios: the MLP baseline's and NAO's input."""
        return torch.tensor(
            np.array([self.space.ratios(np.asarray(c)) for c in counts_list]), dtype=torch.float32
        )

    def fingerprint(self, model: nn.Module) -> dict[str, Any]:
        """What a trained predictor is only valid for: these groups and sizes, this layer graph, these
        weights (and the feature layout). Compared field by field when a predictor is loaded."""
        from netsculpt.search.state import weights_fingerprint

        edges = hashlib.sha256(self.adjacency.numpy().tobytes()).hexdigest()[:16]
        return json.loads(
            json.dumps(
                {
                    "features": [FEATURE_VERSION, *self.names],
                    "groups": [[g, int(s)] for g, s in zip(self.space.ids, self.space.sizes)],
                    "floors": [int(f) for f in self.space.floors],
                    "layers": self.nodes,
                    "edges": edges,
                    "weights": weights_fingerprint(model),
                }
            )
        )
