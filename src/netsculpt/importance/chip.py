"""CHIP (Sui et al., NeurIPS 2021): channel independence — how much of a layer's feature-map nuclear norm
disappears when one channel's map is removed.

For one image the layer's post-activation maps form ``A`` (C x HW). Channel ``c``'s independence is
``CI_c = ||A||_* - ||A_c||_*`` with ``A_c`` = ``A`` with row ``c`` zeroed; the score is its mean over
calibration images (and over the group's activation sites). The definition needs C + 1 SVDs per image.

Exact fast form used here (derivation in docs/criteria.md): with ``A A^T = U diag(lam) U^T`` (from the
smaller Gram matrix) and ``p_ci = U_ci^2`` (plus the weight of the null space when C > HW),

    CI_c = (2/pi) * integral_0^inf  D_c(s^2) ds,   D_c(t) = sum_i p_ci lam_i / (lam_i + t)^2
                                                            / sum_i p_ci / (lam_i + t)

(``sqrt(x) = (2/pi) int x / (x + s^2) ds`` plus Cramer's rule for the principal submatrix's resolvent).
On a log grid ``s = e^u`` the integrand is analytic in the strip ``|Im u| < pi/2``, so the trapezoid
rule converges exponentially; both tails are bounded by ``sigma_max * e^-SPAN``. All C channels cost two
batched matrix products, O(C * min(C, HW) * nodes), after one symmetric eigendecomposition of the smaller
Gram matrix; it matches the definition to ~1e-10 relative (measured: step 0.25 gives 1e-13, 0.4 6e-10,
0.5 8e-8; tests/importance/test_chip.py, benchmarks/chip_speed.py).

``nuclear_norm_drops_eig`` is the direct exact alternative (batched ``eigvalsh`` of the C principal
submatrices of ``A A^T``, or of the C rank-one downdates of ``A^T A`` when C > HW); it is kept for the
benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import register_criterion
from netsculpt.importance.feature_maps import FeatureMapCriterion
from netsculpt.importance.sites import Site

STEP = 0.35  # trapezoid step in u = log s: error ~ exp(-pi^2 / STEP) ~ 6e-13 (analytic in |Im u| < pi/2)
SPAN = 32.0  # integrate over u in log(sigma_max) +- SPAN: each tail is below sigma_max * e^-32 ~ 1e-14
CHUNK_ELEMENTS = 1 << 22  # float64 values per batched call (32 MiB): bounds peak memory


def _spectrum(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``lam`` (B, k') of ``A A^T`` and the weights ``p`` (B, C, k') of each row on their
    eigenvectors (rows of ``p`` sum to 1), from the smaller of the two Gram matrices."""
    b, c, d = a.shape
    if c <= d:
        lam, u = torch.linalg.eigh(a @ a.mT)
        return lam.clamp_min(0), u.square()
    lam, v = torch.linalg.eigh(a.mT @ a)  # A^T A = V diag(lam) V^T; columns of A V are sigma * u
    lam = lam.clamp_min(0)
    sigma = lam.sqrt()
    live = sigma > sigma.amax(-1, keepdim=True) * (d * torch.finfo(a.dtype).eps)
    u = (a @ v) / torch.where(live, sigma, torch.ones_like(sigma))[:, None, :]
    p = torch.where(live[:, None, :], u.square(), torch.zeros_like(u))
    null = (1 - p.sum(-1, keepdim=True)).clamp_min(0)  # weight on the null space of A A^T (eigenvalue 0)
    lam = torch.cat([torch.where(live, lam, torch.zeros_like(lam)), lam.new_zeros(b, 1)], -1)
    return lam, torch.cat([p, null], -1)


def nuclear_norm_drops(a: torch.Tensor) -> torch.Tensor:
    """``||A||_* - ||A with row c zeroed||_*`` for every row ``c``: (..., C, D) -> (..., C) in float64,
    via the resolvent integral (module docstring)."""
    *lead, c, d = a.shape
    a = a.reshape(-1, c, d).double()
    if d == 1:  # one position (a linear layer's features): ||A||_* = ||a||, closed form
        norm2 = a.square().sum(1)  # (B, 1)
        return (norm2.sqrt() - (norm2 - a[..., 0].square()).clamp_min(0).sqrt()).reshape(*lead, c)
    lam, p = _spectrum(a)
    s = lam.sqrt()
    smax = s.amax(-1)
    zero = smax == 0
    smax = torch.where(zero, torch.ones_like(smax), smax)
    nodes = torch.arange(-SPAN, SPAN + STEP / 2, STEP, dtype=torch.float64)
    out = a.new_empty(a.shape[0], c)
    step = max(1, CHUNK_ELEMENTS // max(lam.shape[-1] * nodes.numel(), 1))
    for lo in range(0, a.shape[0], step):
        hi = min(lo + step, a.shape[0])
        grid = smax[lo:hi, None] * nodes.exp()  # s, (b, K)
        t = grid.square()
        inv = 1.0 / (lam[lo:hi, :, None] + t[:, None, :])  # (b, k', K)
        num = p[lo:hi] @ (lam[lo:hi, :, None] * inv.square())  # positive terms: no cancellation
        den = p[lo:hi] @ inv
        ratio = torch.where(den > 0, num / den, torch.zeros_like(num))
        out[lo:hi] = (ratio * grid[:, None, :]).sum(-1) * (STEP * 2 / math.pi)
    out[zero] = 0
    return out.reshape(*lead, c)


def _sqrt_eig_sum(sym: torch.Tensor) -> torch.Tensor:
    """Sum of square roots of the eigenvalues of symmetric PSD matrices (..., k, k) -> (...)."""
    if sym.shape[-1] == 0:
        return sym.new_zeros(sym.shape[:-2])
    return torch.linalg.eigvalsh(sym).clamp_min(0).sqrt().sum(-1)


def nuclear_norm_drops_eig(a: torch.Tensor) -> torch.Tensor:
    """Same as :func:`nuclear_norm_drops` by batched ``eigvalsh``: principal submatrices of ``A A^T``
    (C <= D) or rank-one downdates ``A^T A - a_c a_c^T`` (C > D). (..., C, D) -> (..., C)."""
    *lead, c, d = a.shape
    a = a.reshape(-1, c, d).double()
    out = a.new_empty(a.shape[0], c)
    k = c - 1 if c <= d else d
    gram = a @ a.mT if c <= d else a.mT @ a
    full = _sqrt_eig_sum(gram)
    keep = torch.arange(c).expand(c, c)[~torch.eye(c, dtype=torch.bool)].reshape(c, c - 1)
    step_c = max(1, min(c, CHUNK_ELEMENTS // max(k * k, 1)))
    for b in range(a.shape[0]):
        for lo in range(0, c, step_c):
            chans = slice(lo, min(lo + step_c, c))
            if c <= d:
                idx = keep[chans]
                mats = gram[b][idx[:, :, None], idx[:, None, :]]  # (c', C-1, C-1)
            else:
                rows = a[b, chans]
                mats = gram[b] - rows[:, :, None] * rows[:, None, :]  # (c', D, D)
            out[b, chans] = full[b] - _sqrt_eig_sum(mats)
    return out.reshape(*lead, c)


def nuclear_norm_drops_naive(a: torch.Tensor) -> torch.Tensor:
    """The definition: one SVD of ``A`` and one of each ``A`` with a row zeroed. (C, D) -> (C,)."""
    a = a.double()
    c = a.shape[0]
    full = torch.linalg.svdvals(a).sum()
    masked = a.expand(c, *a.shape).clone()
    masked[torch.arange(c), torch.arange(c)] = 0
    return full - torch.linalg.svdvals(masked).sum(-1)


@register_criterion("chip")
@dataclass
class CHIP(FeatureMapCriterion):
    """Mean nuclear-norm drop when a channel's post-activation map is removed (channel independence)."""

    def observe(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        maps = x.reshape(x.shape[0], x.shape[1], -1)
        self.add(group, nuclear_norm_drops(maps).sum(0), x.shape[0])
