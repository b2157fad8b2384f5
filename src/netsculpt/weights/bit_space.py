"""Per-layer bit widths for palettization: the exact bytes on disk of any bit vector, and its accuracy.

The packed file (:mod:`netsculpt.weights.storage`) stores each palettized tensor as ``ceil(points *
bits / 8)`` index bytes plus an fp16 table of ``groups * 2**bits * vector_dim`` values; everything else
(dense tensors, headers) does not depend on the bits. So the file size of a bit vector is a fixed part,
measured once by really packing the model at one bit width, plus a per-layer sum: no model is built to
price a candidate. Candidates are scored by swapping in k-means palettes fitted once per (layer, bits),
on a few held-out batches: the cheap score HAQ's agent and the GA baselines learn from.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.layer_kinds import is_linear, transposed
from netsculpt.progress import track
from netsculpt.weights.config import PaletteConfig
from netsculpt.weights.kmeans import fit_codebook
from netsculpt.weights.layer_space import LayerSpace
from netsculpt.weights.layout import MAX_BITS, PaletteSpec, to_points
from netsculpt.weights.packing import packed_nbytes
from netsculpt.weights.palette import Palette, palette_from_centroids, set_palette_

HEADER_SLACK = 64  # bytes: safetensors header digits and 8-byte alignment may differ by this much


@dataclass
class BitLayer:
    name: str
    module: nn.Module
    shape: tuple[int, ...]
    group_size: int | None
    vector_dim: int
    bits: list[int]  # allowed bit widths, ascending

    def spec(self, bits: int) -> PaletteSpec:
        return PaletteSpec(bits=bits, group_size=self.group_size, vector_dim=self.vector_dim)

    def nbytes(self, bits: int) -> int:
        """Index bytes plus the fp16 table of this layer at ``bits``."""
        spec = self.spec(bits)
        groups = spec.groups(self.shape)
        points = int(np.prod(self.shape)) // self.vector_dim
        return packed_nbytes(points, bits) + groups * 2**bits * self.vector_dim * 2


class BitSpace(LayerSpace[BitLayer]):
    """The layers ``config`` selects, each with bit choices ``low..high``, priced in packed bytes."""

    slack = HEADER_SLACK  # a search keeps this far under its budget

    def __init__(self, model: nn.Module, config: PaletteConfig, low: int = 1, high: int = MAX_BITS) -> None:
        materialised(model, "search bit widths for")  # the layers are priced by their weights' shapes
        if not 1 <= low <= high <= MAX_BITS:
            raise ConfigError(f"bit range {low}..{high} must lie within 1..{MAX_BITS}")
        self.config = config
        probe = copy.copy(config)
        probe.bits, probe.layer_bits = low, {}
        layers: list[BitLayer] = []
        for name, module, spec in probe.select(model):
            shape = tuple(module.weight.shape)
            points = int(np.prod(shape)) // spec.vector_dim // spec.groups(shape)
            allowed = [b for b in range(low, high + 1) if points >= 2**b]
            layers.append(BitLayer(name, module, shape, spec.group_size, spec.vector_dim, allowed))
        super().__init__(model, layers)
        self._fixed: int | None = None
        self._palettes: dict[tuple[int, int], Palette] = {}

    def fixed_bytes(self) -> int:
        """Bytes of the packed file that no bit width changes, measured by packing a copy once."""
        if self._fixed is None:
            from netsculpt.weights.storage import packed_size_bytes

            probe = copy.deepcopy(self.model)
            modules = dict(probe.named_modules())
            low = [layer.bits[0] for layer in self.layers]
            for layer, bits in zip(self.layers, low):
                set_palette_(modules[layer.name], "weight", self.palette(self.layers.index(layer), bits))
            self._fixed = packed_size_bytes(probe) - sum(
                layer.nbytes(b) for layer, b in zip(self.layers, low)
            )
        return self._fixed

    def nbytes(self, bits: Iterable[int]) -> int:
        """Predicted bytes of ``model.safetensors`` with these bits per layer (within HEADER_SLACK)."""
        return self.fixed_bytes() + sum(layer.nbytes(int(b)) for layer, b in zip(self.layers, bits))

    def palette(self, i: int, bits: int) -> Palette:
        """The k-means palette of layer ``i`` at ``bits`` (fitted once, one k-means run per group)."""
        key = (i, bits)
        if key not in self._palettes:
            layer = self.layers[i]
            weight = self._original[layer.name]
            spec = layer.spec(bits)
            centroids = torch.stack(
                [fit_codebook(g, spec.k, seed=self.config.seed, n_init=1) for g in to_points(weight, spec)]
            )
            self._palettes[key] = palette_from_centroids(weight, centroids, spec)
        return self._palettes[key]

    def prepare(self) -> None:
        """Fit every (layer, bits) palette up front, with a progress bar (the slow part of a search)."""
        jobs = [(i, b) for i, layer in enumerate(self.layers) for b in layer.bits]
        for i, b in track(jobs, "k-means palettes per bit width"):
            self.palette(i, b)

    def evaluate(self, bits: Iterable[int], batches: list[tuple[Tensor, Tensor]]) -> tuple[float, float]:
        """(accuracy, loss) of the model with these bits on ``batches``; the weights are put back after."""
        weights = {(i, b): self.palette(i, b).weight() for i, b in enumerate(int(b) for b in bits)}
        return _swap_evaluate(self.model, self.names, self._original, weights, bits, batches)

    def task(self, batches: list[tuple[Tensor, Tensor]]) -> BitEvalTask:
        """What an executor's workers need to score bit vectors (the palettes' dense weights, fitted here)."""
        self.prepare()
        weights = {
            (i, b): self.palette(i, b).weight() for i, layer in enumerate(self.layers) for b in layer.bits
        }
        return BitEvalTask(self.model, self.names, weights, batches)


def _swap_evaluate(
    model: nn.Module,
    names: list[str],
    original: dict[str, Tensor],
    weights: dict[tuple[int, int], Tensor],
    bits: Iterable[int],
    batches: list[tuple[Tensor, Tensor]],
) -> tuple[float, float]:
    from netsculpt.train import evaluate

    modules = dict(model.named_modules())
    try:
        with torch.no_grad():
            for i, (name, b) in enumerate(zip(names, bits)):
                weight = modules[name].weight
                weight.copy_(weights[(i, int(b))].to(weight.dtype))
        return evaluate(model, batches)
    finally:
        with torch.no_grad():
            for name in names:
                modules[name].weight.copy_(original[name])


@dataclass
class BitEvalTask:
    """Scores bit vectors on an executor (:mod:`netsculpt.search.executors`): the model, the dense
    weight of every (layer, bits) palette and the held-out batches, pickled once per worker."""

    model: nn.Module
    names: list[str]
    weights: dict[tuple[int, int], Tensor]
    batches: list[tuple[Tensor, Tensor]]

    def make_evaluator(self) -> BitEvaluator:
        return BitEvaluator(self)


class BitEvaluator:
    """Job ``(bits, n_batches)`` -> :class:`~netsculpt.search.evaluator.Evaluation` on the first batches."""

    def __init__(self, task: BitEvalTask) -> None:
        import copy

        self.task = task
        # A private copy: spawned workers unpickle the task's tensors into shared memory, so two workers
        # swapping palettes into one model in place overwrote each other's weights mid-evaluation.
        self.model = copy.deepcopy(task.model)
        modules = dict(self.model.named_modules())
        self.original = {n: modules[n].weight.detach().clone() for n in task.names}

    def __call__(self, job: tuple[tuple[int, ...], int]) -> Any:
        from netsculpt.search.evaluator import Evaluation

        bits, n_batches = job
        batches = self.task.batches[:n_batches]
        t = self.task
        accuracy, loss = _swap_evaluate(self.model, t.names, self.original, t.weights, bits, batches)
        return Evaluation(accuracy, loss, sum(int(y.shape[0]) for _, y in batches))


class BitWalkSpace:
    """A :class:`BitSpace` as a walk space: choices are bit widths, the action maps [0, 1] onto them,
    the cost is predicted bytes. State: out/in channels, kernel, weights, share of the bytes."""

    def __init__(self, space: BitSpace) -> None:
        self.space = space
        self._choices = [np.array(layer.bits) for layer in space.layers]
        rows = []
        for layer in space.layers:
            shape = layer.shape[::-1] if transposed(layer.module) else layer.shape  # as (out, in, ...)
            kernel = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
            linear = 1.0 if is_linear(layer.module) else 0.0
            rows.append([linear, shape[1] if len(shape) > 1 else 1, shape[0], kernel, float(np.prod(shape))])
        self._weights = np.array(
            [layer.nbytes(layer.bits[-1]) - layer.nbytes(layer.bits[0]) for layer in space.layers], float
        )
        self._features = np.column_stack([np.array(rows, dtype=np.float64), self._weights])

    def choices(self, i: int) -> np.ndarray:
        return self._choices[i]

    def cost(self, values: np.ndarray) -> float:
        return float(self.space.nbytes(values))

    def to_choice(self, i: int, action: float) -> int:
        n = len(self._choices[i])
        return int(np.clip(np.floor(action * n), 0, n - 1))

    def to_action(self, i: int, index: int) -> float:
        return (index + 0.5) / len(self._choices[i])

    def features(self) -> np.ndarray:
        return self._features

    def weights(self) -> np.ndarray:
        return self._weights


def apply_bits_(space: BitSpace, bits: Iterable[int]) -> nn.Module:
    """Palettize ``space.model`` in place with the cached k-means palettes at ``bits`` (no training)."""
    for i, (layer, b) in enumerate(zip(space.layers, bits)):
        set_palette_(layer.module, "weight", space.palette(i, int(b)))
    return space.model


def describe_bits(space: BitSpace, bits: Iterable[int]) -> list[dict[str, Any]]:
    """Per layer: name, shape, bits and bytes (for reports and the search history)."""
    return [
        {"layer": layer.name, "shape": list(layer.shape), "bits": int(b), "bytes": layer.nbytes(int(b))}
        for layer, b in zip(space.layers, bits)
    ]
