"""HRel (Sarvani et al., Neural Networks 2022): keep filters whose activation maps share the most
information with the class labels ("relevance", from the information bottleneck view).

Mutual information is estimated without densities, with the matrix-based Renyi alpha-entropy functional
(Sanchez Giraldo, Rao & Principe 2015; joint entropy from the Hadamard product, Yu et al. 2019):

    S_a(A) = 1/(1-a) log2 sum_i lambda_i(A)^a        A = K / tr K (K a Gram matrix over N samples)
    I(T; Y) = S_a(A) + S_a(B) - S_a(A o B / tr(A o B))

``A`` is a Gaussian Gram matrix of one filter's activation maps (flattened) over the N samples of a
batch, ``B`` the class-equality kernel of the labels (the zero-width limit of a Gaussian kernel on one-hot
labels, so ``S_a(B)`` is exactly the Renyi entropy of the batch's class frequencies). All filters of a
site are done at once: ``torch.cdist`` on (C, N, HW) and ``eigvalsh`` on (C, N, N). ``alpha = 1.01``
approximates Shannon entropy while keeping the functional's smooth alpha-order form (Yu et al.).

Kernel width (``kernel_width``):

- ``"align"`` (default, the HRel authors' rule): one width per site and batch, shared by every filter:
  the width whose Gaussian Gram matrix of the *whole layer's* maps is best aligned with the label kernel
  (kernel-target alignment). Rescaling the whole layer changes nothing, but a filter whose maps vary
  little next to its layer-mates' looks nearly constant and scores low, which is what the network sees.
- ``"median"``: each filter's own median pairwise distance. It makes every filter scale-free, and that
  is its failure: the maps' size no longer counts, the scores of a layer become nearly flat (LeNet-5
  conv1: all within 1.5 %), and at 0.3x MACs HRel fell below random (docs/criteria.md, measured on
  held-out training digits with ``benchmarks/hrel_diagnostic.py``).
- a number: that width for every filter.

Like any finite-sample MI estimate this one is biased upwards for maps that differ from image to image;
batches need several images per class (a warning says so when they have fewer).

The score is the mutual information averaged over calibration batches (weighted by batch size) and over
the group's activation sites. Batches should hold many samples per class (64 or more for 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from netsculpt.errors import ConfigError, NetsculptWarning, PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import ACTIVATIONS, LABELS, WEIGHTS, register_criterion
from netsculpt.importance.feature_maps import FeatureMapCriterion
from netsculpt.importance.sites import Site

# Below 2 images per class in a batch the joint Gram A o B is diagonal and the labels drop out of the
# estimate; a few pairs per class per batch (4 x classes: 40 for 10) and some 20 images per class in all
# keep it from measuring only how varied a filter's maps are.
MIN_PER_CLASS_IN_BATCH = 4
MIN_PER_CLASS = 20


def renyi_entropy(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """Matrix-based Renyi alpha-entropy (bits) of trace-normalised PSD matrices (..., N, N) -> (...)."""
    gram = gram / gram.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eig = torch.linalg.eigvalsh(gram).clamp_min(0)
    return torch.log2(eig.pow(alpha).sum(-1)) / (1 - alpha)


KERNEL_WIDTHS = ("align", "median")
ALIGN_GRID = torch.logspace(-2, 1.5, 120, dtype=torch.float64)  # widths tried, x the median distance


def alignment_width(flat: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """The Gaussian width whose Gram matrix of the whole layer's maps ``flat`` (N, D) is best aligned with
    the label kernel ``same``: <K, L> / (|K| |L|), over widths from 1/100 to 30x the median distance."""
    dist = torch.cdist(flat[None], flat[None], compute_mode="donot_use_mm_for_euclid_dist")[0]
    positive = dist[dist > 0]
    if positive.numel() == 0:
        return torch.ones((), dtype=dist.dtype)  # identical maps: any width gives an all-ones Gram
    grid = ALIGN_GRID.to(dist.dtype) * positive.median()
    gram = torch.exp(-dist.square()[None] / (2 * grid[:, None, None] ** 2))
    align = (gram * same).sum((1, 2)) / gram.flatten(1).norm(dim=1)
    return grid[int(align.argmax())]


def kernel_widths(
    dist: torch.Tensor, rule: str | float, layer_width: torch.Tensor | None = None
) -> torch.Tensor:
    """Gaussian kernel width per filter from its pairwise distances (C, N, N): ``"align"`` the layer's
    width (``layer_width``, shared by every filter), ``"median"`` each filter's own median non-zero
    distance, a number that width."""
    c = dist.shape[0]
    if not isinstance(rule, str):
        return torch.full((c,), float(rule), dtype=dist.dtype)
    if rule == "align":
        assert layer_width is not None
        return layer_width.to(dist.dtype).expand(c)
    off = dist.masked_fill(dist <= 0, float("nan")).reshape(c, -1)  # the diagonal and identical maps
    width = off.nanmedian(-1).values  # NaN when every map is identical: any width gives an all-ones Gram
    return torch.nan_to_num(width, nan=1.0).clamp_min(torch.finfo(dist.dtype).tiny)


def mutual_information(
    x: torch.Tensor, labels: torch.Tensor, *, alpha: float = 1.01, kernel_width: str | float = "align"
) -> torch.Tensor:
    """I(T_c; Y) in bits for every channel of one batch: ``x`` (N, C, *rest), ``labels`` (N,) -> (C,)."""
    n, c = x.shape[:2]
    feats = x.reshape(n, c, -1).transpose(0, 1).double()  # (C, N, D)
    # the direct form, not the matmul shortcut: identical maps must be exactly 0 apart for the median rule
    dist = torch.cdist(feats, feats, compute_mode="donot_use_mm_for_euclid_dist")
    same = (labels.reshape(-1, 1) == labels.reshape(1, -1)).double()
    layer = alignment_width(feats.transpose(0, 1).reshape(n, -1), same) if kernel_width == "align" else None
    width = kernel_widths(dist, kernel_width, layer)
    gram = torch.exp(-dist.square() / (2 * width[:, None, None] ** 2))
    h_y = renyi_entropy(same, alpha)
    return renyi_entropy(gram, alpha) + h_y - renyi_entropy(gram * same, alpha)


@register_criterion("hrel")
@dataclass
class HRel(FeatureMapCriterion):
    """Mutual information between each channel's post-activation maps and the labels (higher = keep)."""

    alpha: float = 1.01
    kernel_width: str | float = "align"
    needs: ClassVar[frozenset[str]] = frozenset({WEIGHTS, ACTIVATIONS, LABELS})
    per_image_labels: ClassVar[bool] = True  # its label kernel compares one class per image

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.alpha != 1):
            raise ConfigError(f"hrel alpha must be > 0 and != 1 (e.g. 1.01), got {self.alpha!r}")
        rule = self.kernel_width
        if isinstance(rule, str) and rule not in KERNEL_WIDTHS:
            raise ConfigError(f"hrel kernel_width={rule!r}: use 'align', 'median' or a positive number")
        if not isinstance(rule, str) and not float(rule) > 0:
            raise ConfigError(f"hrel kernel_width must be positive, got {rule!r}")

    def observe(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        if labels is None:
            raise PruningError(
                "criterion hrel needs labels: calibration batches must be (inputs, labels) pairs"
            )
        key = (site.module, site.call, site.output_index)  # counted per site: a stage has one per block
        counts = torch.bincount(labels.reshape(-1).long().cpu())
        self.label_counts[key] = _add_counts(self.label_counts.get(key), counts)
        self.batch_sizes.setdefault(key, []).append(int(x.shape[0]))
        if x.shape[0] < 2:
            return  # one sample carries no information about a distribution
        mi = mutual_information(x, labels, alpha=self.alpha, kernel_width=self.kernel_width)
        self.add(group, mi * x.shape[0], x.shape[0])

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        # MI is >= 0; a dead filter's estimate is rounding noise (~1e-14 bits): ties, not an order
        return np.round(np.clip(self.mean(group), 0.0, None), 9)

    def select_sites(self, model: nn.Module, graph: ChannelGraph) -> dict[str, list[Site]]:
        self.label_counts: dict[tuple, torch.Tensor] = {}
        self.batch_sizes: dict[tuple, list[int]] = {}
        return super().select_sites(model, graph)

    def check_calibration(self) -> None:
        """Warn when the batches hold too few images per class for the estimator (see the constants)."""
        if not self.label_counts:
            return
        key = next(iter(self.label_counts))  # every site sees every calibration image once
        counts, sizes = self.label_counts[key], self.batch_sizes[key]
        classes = max(int((counts > 0).sum()), len(counts))
        # the typical batch: a loader's short last batch is a small part of the weighted mean
        total, typical = int(counts.sum()), int(np.median(sizes))
        problems = []  # only what is short: 25.6 per class in batches of 16 is a batch-size problem
        if typical < MIN_PER_CLASS_IN_BATCH * classes:
            problems.append(
                f"its batches of {typical} hold {typical / classes:.1f} images per class and it needs at "
                f"least {MIN_PER_CLASS_IN_BATCH} per class in a batch ({MIN_PER_CLASS_IN_BATCH * classes} "
                "images): use a larger calibration batch size"
            )
        if total < MIN_PER_CLASS * classes:
            problems.append(
                f"it needs at least {MIN_PER_CLASS} images per class in all ({MIN_PER_CLASS * classes} "
                "here): pass more calibration batches (calib_batches=, CLI --calib-batches)"
            )
        if not problems:
            return
        warn_user(
            f"hrel saw {total} calibration images of {classes} classes ({total / classes:.1f} per class; "
            f"batches of {typical}): {'; and '.join(problems)}. Otherwise the scores mostly measure how "
            "varied each filter is, not its relevance",
            NetsculptWarning,
        )


def _add_counts(prev: torch.Tensor | None, counts: torch.Tensor) -> torch.Tensor:
    if prev is None:
        return counts
    size = max(len(prev), len(counts))
    return nn.functional.pad(prev, (0, size - len(prev))) + nn.functional.pad(counts, (0, size - len(counts)))
