"""COCO keypoints (``person_keypoints_*.json``): checked when the file is read, then ``(N, K, 3)`` per image.

COCO lists a category's keypoint names in ``categories[].keypoints`` and its limbs in ``skeleton`` (pairs of
1-based keypoint numbers); each annotation holds ``keypoints`` ``[x1, y1, v1, x2, ...]`` in pixels, with
``v`` 0 (not labelled, x = y = 0), 1 (labelled, hidden) or 2 (visible), and ``num_keypoints`` (how many have
``v > 0``). They reach the target as ``keypoints`` ``(N, K, 3)``, as the YOLO pose reader gives them, which
torchvision's keypoint R-CNN trains on. An annotation without keypoints (another category in a mixed file)
gets K unlabelled ones (``v = 0``), which the loss and the metric both skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netsculpt.checks import is_int
from netsculpt.errors import DataError


def keypoint_layout(path: Path, data: dict[str, Any]) -> tuple[int, list[str], list[tuple[int, int]]]:
    """``(K, names, skeleton)`` of the file; ``K`` is 0 when it has no keypoints at all."""
    names: list[str] | None = None
    skeleton: list[tuple[int, int]] = []
    for i, cat in enumerate(data["categories"]):
        own = cat.get("keypoints")
        if own is None:
            continue
        if not (isinstance(own, list) and own and all(isinstance(n, str) for n in own)):
            raise DataError(
                f"{path}: categories[{i}].keypoints must be a list of keypoint names, got {own!r}"
            )
        if names is not None and len(own) != len(names):
            raise DataError(
                f"{path}: categories[{i}] names {len(own)} keypoints, an earlier category {len(names)}; a "
                "keypoint detector predicts one number of keypoints for every class"
            )
        names = names or list(own)
        bones = cat.get("skeleton", [])
        if not (isinstance(bones, list) and all(_bone(b, len(own)) for b in bones)):
            raise DataError(
                f"{path}: categories[{i}].skeleton must list pairs of keypoint numbers 1..{len(own)} "
                f"(1-based, as COCO's), got {bones!r}"
            )
        skeleton = skeleton or [(int(a), int(b)) for a, b in bones]
    if names is None:  # keypoints without named categories: their length says how many
        lengths = {len(a["keypoints"]) for a in data["annotations"] if isinstance(a.get("keypoints"), list)}
        if not lengths:
            return 0, [], []
        if len(lengths) > 1 or min(lengths) % 3 or not min(lengths):
            raise DataError(
                f"{path}: annotations hold keypoint lists of {sorted(lengths)} values; each needs x, y, v "
                "for every keypoint (3 x K values, the same K throughout); name them in "
                "categories[].keypoints"
            )
        count = min(lengths) // 3
        return count, [str(k) for k in range(count)], []
    return len(names), names, skeleton


def _bone(bone: object, count: int) -> bool:
    return isinstance(bone, list) and len(bone) == 2 and all(is_int(k) and 1 <= k <= count for k in bone)


def check_keypoints(path: Path, ann: dict[str, Any], count: int) -> None:
    """An annotation's ``keypoints`` and ``num_keypoints`` well formed for ``count`` keypoints."""
    points, where = ann.get("keypoints"), f"{path}: annotation {ann.get('id')!r}"
    if points is None:
        return
    if count == 0 or not isinstance(points, list) or len(points) != 3 * count:
        got = f"{len(points)} values" if isinstance(points, list) else repr(points)
        raise DataError(
            f"{where} has keypoints of {got}; the file's categories name {count} keypoints, so it needs "
            f"{3 * count} (x, y, v for each keypoint, v = 0 where not labelled)"
        )
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in points):
        raise DataError(f"{where} has a keypoint value that is not a number: {points[:6]!r}...")
    if any(v not in (0, 1, 2) for v in points[2::3]):
        raise DataError(
            f"{where} has a keypoint visibility that is not 0 (not labelled), 1 or 2; fix the file"
        )
    labelled = sum(1 for v in points[2::3] if v > 0)
    declared = ann.get("num_keypoints", labelled)
    if not is_int(declared) or declared != labelled:
        raise DataError(
            f"{where} says num_keypoints {declared!r} but labels {labelled} keypoints (v > 0); "
            "num_keypoints must count them"
        )


def keypoint_tensor(anns: list[dict[str, Any]], count: int) -> torch.Tensor:
    """``(N, K, 3)`` float32 keypoints of ``anns``; an annotation without any gets K with ``v = 0``."""
    rows = [a.get("keypoints") or [0.0] * (3 * count) for a in anns]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(anns), count, 3)
