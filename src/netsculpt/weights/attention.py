"""DKM's attention between weights and centroids, computed in chunks so big layers fit in memory.

For ``G`` codebooks of ``n`` points and ``k`` centroids the attention matrix is ``G x n x k``: a
ResNet-50 3x3 conv at 8 bits is 2.4M x 256 floats, 2.4 GB per copy, and autograd keeps several. The
:class:`_Chunked` function computes any per-point map over slices of at most ``max_elements``
attention entries and, in backward, recomputes one slice at a time (checkpointing by hand), so peak
memory is a few slices, not a few full matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

PointFn = Callable[[Tensor, Tensor], Tensor]
EPS = 1e-12


CENTROID_MAJOR_MAX_K = 32  # measured: softmax over a short last dim is up to 10x slower than over dim 1


def _centroid_major(k: int) -> bool:
    """Lay attention out as ``(G, k, n)`` for few centroids, ``(G, n, k)`` for many (faster softmax)."""
    return k <= CENTROID_MAJOR_MAX_K


def _attention(points: Tensor, centroids: Tensor, scale: Tensor, temperature: float) -> Tensor:
    """Attention in the faster layout: ``(G, k, n)`` when :func:`_centroid_major`, else ``(G, n, k)``."""
    major = _centroid_major(centroids.shape[1])
    if points.shape[-1] == 1:  # |w - c| is exact and cheaper than cdist
        dist = (points.transpose(1, 2) - centroids) if major else (points - centroids.transpose(1, 2))
        dist = dist.abs()
    else:
        pair = (centroids, points) if major else (points, centroids)
        dist = torch.cdist(*pair, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.softmax(dist * (-1.0 / (temperature * scale)), dim=1 if major else 2)


def attention(points: Tensor, centroids: Tensor, scale: Tensor, temperature: float) -> Tensor:
    """Soft assignment ``(G, n, k)``: softmax over centroids of ``-distance / (temperature * scale)``.

    ``scale`` (the group's weight std, ``(G, 1, 1)``) makes ``temperature`` unit-free, so one value
    suits layers whose weights differ in magnitude by 100x. Rows sum to 1.
    """
    a = _attention(points, centroids, scale, temperature)
    return a.transpose(1, 2) if _centroid_major(centroids.shape[1]) else a


def soft_weights(points: Tensor, centroids: Tensor, *, scale: Tensor, temperature: float) -> Tensor:
    """Each point replaced by its attention-weighted mix of centroids, ``(G, n, d)``."""
    a = _attention(points, centroids, scale, temperature)
    if _centroid_major(centroids.shape[1]):
        return (centroids.transpose(1, 2) @ a).transpose(1, 2)  # (d x k) @ (k x n): one BLAS pass
    return a @ centroids


def cluster_sums(points: Tensor, centroids: Tensor, *, scale: Tensor, temperature: float) -> Tensor:
    """``A^T [points | 1]``, ``(G, k, d + 1)``: attention-weighted sums of points and attention mass."""
    a = _attention(points, centroids, scale, temperature)
    if not _centroid_major(centroids.shape[1]):
        a = a.transpose(1, 2)
    return a @ torch.cat([points, torch.ones_like(points[..., :1])], -1)


class _Chunked(torch.autograd.Function):
    """``fn`` over slices of points, concatenated (``reduce=False``) or summed; backward recomputes."""

    @staticmethod
    def forward(ctx, fn: PointFn, chunk: int, reduce: bool, points: Tensor, centroids: Tensor) -> Tensor:  # type: ignore[override]
        ctx.fn, ctx.chunk, ctx.reduce = fn, chunk, reduce
        ctx.save_for_backward(points, centroids)
        parts = [fn(points[:, s : s + chunk], centroids) for s in range(0, points.shape[1], chunk)]
        return torch.stack(parts).sum(0) if reduce else torch.cat(parts, 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        points, centroids = ctx.saved_tensors
        need_points, need_centroids = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        grad_points = torch.zeros_like(points) if need_points else None
        grad_centroids = torch.zeros_like(centroids) if need_centroids else None
        for s in range(0, points.shape[1], ctx.chunk):
            with torch.enable_grad():
                part = points[:, s : s + ctx.chunk].detach().requires_grad_(need_points)
                cents = centroids.detach().requires_grad_(need_centroids)
                out = ctx.fn(part, cents)
                inputs = [t for t, need in ((part, need_points), (cents, need_centroids)) if need]
                grads = torch.autograd.grad(out, inputs, grad if ctx.reduce else grad[:, s : s + ctx.chunk])
            grads_iter = iter(grads)
            if need_points:
                grad_points[:, s : s + ctx.chunk] = next(grads_iter)
            if need_centroids:
                grad_centroids += next(grads_iter)
        return None, None, None, grad_points, grad_centroids


def chunk_points(groups: int, k: int, max_elements: int | None) -> int | None:
    """Points per slice so one slice's attention holds at most ``max_elements`` entries (None: no chunks)."""
    if max_elements is None:
        return None
    return max(1, max_elements // max(1, groups * k))


def chunked(fn: PointFn, points: Tensor, centroids: Tensor, chunk: int | None, *, reduce: bool) -> Tensor:
    """Apply ``fn`` in slices of ``chunk`` points; one plain call when the whole tensor fits in one."""
    if chunk is None or chunk >= points.shape[1]:
        return fn(points, centroids)
    if not torch.is_grad_enabled() or not (points.requires_grad or centroids.requires_grad):
        parts = [fn(points[:, s : s + chunk], centroids) for s in range(0, points.shape[1], chunk)]
        return torch.stack(parts).sum(0) if reduce else torch.cat(parts, 1)
    return _Chunked.apply(fn, chunk, reduce, points, centroids)


def refine(
    points: Tensor, centroids: Tensor, *, scale: Tensor, temperature: float, chunk: int | None
) -> Tensor:
    """One DKM centroid update: ``c_j = sum_i a_ij w_i / sum_i a_ij`` (a centroid with no mass stays)."""
    sums = chunked(
        partial(cluster_sums, scale=scale, temperature=temperature), points, centroids, chunk, reduce=True
    )
    mass = sums[..., -1:]
    updated = sums[..., :-1] / mass.clamp_min(EPS)
    return torch.where(mass > EPS, updated, centroids)
