"""Post-training k-means palettization: the baseline DKM must beat, with exactly the same storage.

Each codebook group's weights (or weight vectors) are clustered by scikit-learn's ``KMeans``
(k-means++ seeding, Lloyd iterations); every weight is then replaced by its nearest fp16 centroid.
No data and no training: the cheapest way to reach ``bits`` per weight, and DKM's initialisation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.progress import track
from netsculpt.weights.config import PaletteConfig
from netsculpt.weights.layout import PaletteSpec, to_points
from netsculpt.weights.palette import palette_from_centroids, set_palette_


@dataclass
class KMeansConfig(PaletteConfig):
    """``max_samples`` points per group are used to fit (all of them are assigned); ``n_init`` restarts."""

    max_samples: int = 200_000
    n_init: int = 3
    max_iter: int = 100


#: a group whose exact-zero points are at least this share (a sparsified layer) keeps one centroid at
#: exactly 0.0: a fitted zero cluster's mean picks up its few tiny non-zero members (~1e-6), and every
#: zero would turn into that value, undoing the sparsity and its storage saving
ZERO_SHARE_PINNED = 0.01


def fit_codebook(
    points: Tensor, k: int, *, seed: int = 0, max_samples: int = 200_000, n_init: int = 1, max_iter: int = 100
) -> Tensor:
    """``k`` centroids of ``points`` ``(n, d)``, sorted by their first coordinate, as float32 ``(k, d)``.

    Fewer distinct points than ``k`` (a tiny or already-palettized layer) gives those points, repeated.
    A sparse group (exact zeros >= ``ZERO_SHARE_PINNED``) gets an exact zero centroid and ``k - 1``
    fitted to its non-zero points.
    """
    data = points.detach().double().cpu().numpy()
    zero = ~data.any(axis=1)
    if k >= 2 and len(data) and zero.mean() >= ZERO_SHARE_PINNED:
        if zero.all():
            return torch.zeros(k, data.shape[1])
        rest = _fit(data[~zero], k - 1, seed, max_samples, n_init, max_iter)
        centers = np.concatenate([rest, np.zeros((1, data.shape[1]))])
    else:
        centers = _fit(data, k, seed, max_samples, n_init, max_iter)
    order = np.argsort(centers[:, 0], kind="stable")
    return torch.from_numpy(centers[order]).float()


def _fit(data: np.ndarray, k: int, seed: int, max_samples: int, n_init: int, max_iter: int) -> np.ndarray:
    """``k`` k-means centres of ``data`` (unsorted); the distinct points, repeated, when there are <= k."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    sample = data if len(data) <= max_samples else data[rng.choice(len(data), max_samples, replace=False)]
    distinct = np.unique(sample, axis=0)
    if len(distinct) <= k:  # the sample may miss values: count on all points before trusting it
        distinct = np.unique(data, axis=0)
    if len(distinct) <= k:
        centers = distinct[np.arange(k) % len(distinct)]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on near-duplicate points is harmless here
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(sample)
        centers = km.cluster_centers_
    return centers


def init_centroids(
    weight: Tensor, spec: PaletteSpec, *, seed: int = 0, max_samples: int = 200_000, n_init: int = 1
) -> Tensor:
    """``(groups, 2**bits, vector_dim)`` k-means centroids for each codebook group of ``weight``."""
    points = to_points(weight.detach(), spec)
    return torch.stack(
        [fit_codebook(group, spec.k, seed=seed, max_samples=max_samples, n_init=n_init) for group in points]
    )


def kmeans_palettize_(model: nn.Module, config: KMeansConfig | None = None) -> nn.Module:
    """Palettize the selected layers of ``model`` in place with k-means; returns ``model``."""
    from netsculpt.weights.storage import round_dense_

    materialised(model, "cluster")
    config = config or KMeansConfig()
    for _, module, spec in track(config.select(model), "k-means"):
        centroids = torch.stack(
            [
                fit_codebook(
                    group,
                    spec.k,
                    seed=config.seed,
                    max_samples=config.max_samples,
                    n_init=config.n_init,
                    max_iter=config.max_iter,
                )
                for group in to_points(module.weight.detach(), spec)
            ]
        )
        set_palette_(module, "weight", palette_from_centroids(module.weight, centroids, spec))
    round_dense_(model, config.dense_dtype)
    return model
