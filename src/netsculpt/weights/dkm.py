"""DKM: differentiable k-means clustering (Cho et al., ICLR 2022) as a weight parametrization.

Each clustered layer's weight is replaced, in the forward pass, by ``A @ C``: ``A`` is the soft
assignment of every weight to the ``2**bits`` centroids ``C`` (a softmax over negative distances divided
by a temperature) and ``C`` is refined inside the forward pass by the attention-weighted mean of the
weights. The task loss alone trains the weights, and the centroids move with them: no regulariser, no
architecture change (``torch.nn.utils.parametrize`` on ``weight``).

What is differentiated: one centroid update per forward, warm-started from the previous batch's
centroids (kept in a buffer), so the paper's iterate-to-convergence is spread over training steps;
optional extra ``iterations`` run without gradients. The gradient reaches the weights both through
``A`` and through ``C``, at the cost of two attention matrices rather than two per iteration. In eval
mode the layer uses hard assignments to the fp16-rounded centroids, so test accuracy during training is
the accuracy of the model :func:`snap_dkm_` produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.progress import track
from netsculpt.train import TrainConfig
from netsculpt.unparametrize import drop_weight_parametrization_
from netsculpt.weights.attention import EPS, chunk_points, chunked, cluster_sums, refine, soft_weights
from netsculpt.weights.config import PaletteConfig
from netsculpt.weights.kmeans import init_centroids
from netsculpt.weights.layout import PaletteSpec, from_points, lookup, to_points
from netsculpt.weights.palette import Palette, assign, palette_from_centroids, set_palette_


def _default_train() -> TrainConfig:
    # Fine-tuning a trained model: a tenth of a from-scratch learning rate, no warmup, cosine to zero.
    return TrainConfig(epochs=3, lr=0.005, warmup_epochs=0, schedule="cosine")


@dataclass
class DKMConfig(PaletteConfig):
    """DKM settings; ``train`` is the fine-tuning recipe :func:`netsculpt.weights.cluster_model` runs.

    ``temperature`` is in units of each codebook group's weight standard deviation. ``max_elements``
    caps one chunk of the attention matrix (2**22 floats = 16 MiB); None computes it whole.

    Every training forward makes one differentiable centroid update, warm-started from the previous
    batch's centroids, so the k-means iteration runs on across batches (weights move little per step);
    ``iterations`` adds no-grad updates before it, stopping once no centroid moves by ``tol`` stds.
    Measured on LeNet-5: centroids move ~1e-3 stds per update, and each update costs two passes over
    the attention matrix, which dominates the training step.
    """

    temperature: float = 0.02
    iterations: int = 0
    tol: float = 1e-4
    max_elements: int | None = 1 << 22
    init_samples: int = 100_000
    train: TrainConfig = field(default_factory=_default_train)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.temperature, int | float) or not self.temperature > 0:
            raise ConfigError(
                f"temperature must be > 0 (in units of the weight std), got {self.temperature!r}"
            )
        if not isinstance(self.tol, int | float) or self.tol < 0:
            raise ConfigError(f"tol must be >= 0 (in units of the weight std), got {self.tol!r}")
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ConfigError(f"iterations must be an integer >= 0, got {self.iterations!r}")
        if self.max_elements is not None and (
            not isinstance(self.max_elements, int) or self.max_elements < 1
        ):
            raise ConfigError(f"max_elements must be a positive integer or None, got {self.max_elements!r}")
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "train": self.train.to_dict()}


class DKMWeight(nn.Module):
    """The parametrization: ``weight -> A @ C`` in training, ``-> lut[nearest]`` in eval."""

    def __init__(self, weight: Tensor, spec: PaletteSpec, config: DKMConfig) -> None:
        super().__init__()
        self.spec, self.shape = spec, tuple(weight.shape)
        self.temperature, self.iterations, self.tol = float(config.temperature), config.iterations, config.tol
        self.max_elements = config.max_elements
        centroids = init_centroids(weight, spec, seed=config.seed, max_samples=config.init_samples)
        self.register_buffer("centroids", centroids)
        self.last_centroids: Tensor | None = None  # the differentiable centroids of the last forward

    def chunk(self) -> int | None:
        return chunk_points(self.centroids.shape[0], self.spec.k, self.max_elements)

    def scale(self, points: Tensor) -> Tensor:
        return points.detach().std(dim=(1, 2), keepdim=True).clamp_min(EPS)

    def forward(self, weight: Tensor) -> Tensor:
        points = to_points(weight, self.spec)
        if not self.training:
            return from_points(self.hard(points.detach()), self.shape)
        dtype = points.dtype  # a float16 / bfloat16 layer clusters in float32, as its centroids are kept
        points = points.float() if dtype in (torch.float16, torch.bfloat16) else points
        scale, chunk = self.scale(points), self.chunk()
        # a sparse layer's exact-zero centroid (k-means pins it: kmeans.ZERO_SHARE_PINNED) stays 0, so
        # its zeros snap back to exact zeros; fitted centroids are never exactly 0 in practice
        pinned = (self.centroids == 0).all(dim=-1, keepdim=True)
        step = partial(refine, scale=scale, temperature=self.temperature, chunk=chunk)
        with torch.no_grad():
            centroids = self.centroids.clone()  # the buffer is overwritten below; autograd keeps this
            for _ in range(self.iterations):
                previous, centroids = centroids, step(points.detach(), centroids).masked_fill(pinned, 0.0)
                if ((centroids - previous).abs() / scale).max() <= self.tol:
                    break
        sums = chunked(
            partial(cluster_sums, scale=scale, temperature=self.temperature),
            points,
            centroids,
            chunk,
            reduce=True,
        )
        mass = sums[..., -1:]
        centroids = torch.where(mass > EPS, sums[..., :-1] / mass.clamp_min(EPS), centroids)
        centroids = centroids.masked_fill(pinned, 0.0)
        with torch.no_grad():
            self.centroids.copy_(centroids)  # the warm start of the next batch's refinement
        self.last_centroids = centroids
        fn = partial(soft_weights, scale=scale, temperature=self.temperature)
        return from_points(chunked(fn, points, centroids, chunk, reduce=False).to(dtype), self.shape)

    def hard(self, points: Tensor) -> Tensor:
        """Nearest fp16-rounded centroid for every point: exactly what snapping stores, in the weight's
        dtype (a float64 or float16 layer must get its own dtype back, not float32)."""
        lut = self.centroids.to(torch.float16).float()
        return lookup(lut, assign(points, lut)).to(points.dtype)

    def palette(self, weight: Tensor) -> Palette:
        return palette_from_centroids(weight, self.centroids, self.spec)


def prepare_dkm_(model: nn.Module, config: DKMConfig | None = None) -> nn.Module:
    """Attach a :class:`DKMWeight` parametrization to every selected layer (centroids from k-means)."""
    materialised(model, "cluster")
    config = config or DKMConfig()
    for name, module, spec in track(config.select(model), "DKM init"):
        if parametrize.is_parametrized(module, "weight"):
            raise ConfigError(
                f"{name or type(module).__name__}.weight is already parametrized; snap it first"
            )
        dkm = DKMWeight(module.weight.detach(), spec, config)
        start = dkm.centroids.clone()
        parametrize.register_parametrization(module, "weight", dkm)
        # registering evaluates the parametrization once, which in training mode refines the centroids:
        # start from the k-means ones whatever mode the model is in (a loaded model is in eval mode)
        dkm.centroids.copy_(start)
    return model


def dkm_layers(model: nn.Module) -> list[tuple[str, nn.Module, DKMWeight]]:
    """Layers carrying a DKM parametrization, with it."""
    found = []
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, DKMWeight):
                    found.append((name, module, p))
    return found


def snap_dkm_(model: nn.Module, dense_dtype: str = "float32") -> nn.Module:
    """Replace every DKM parametrization by hard assignments: a plain model with palettized weights."""
    from netsculpt.weights.storage import round_dense_

    layers = dkm_layers(model)
    if not layers:
        raise ConfigError("the model has no DKM layers to snap; call prepare_dkm_ first")
    for _, module, dkm in layers:
        original = module.parametrizations.weight.original.detach()
        palette = dkm.palette(original)
        drop_weight_parametrization_(module, bake=False)  # weight stays first: the builder still matches
        set_palette_(module, "weight", palette)
    round_dense_(model, dense_dtype)
    return model
