"""YOLO pose labels (ultralytics' format): ``class cx cy w h`` and then K keypoints ``px py [v]`` per line.

The dataset YAML's ``kpt_shape: [K, 2 | 3]`` says how many keypoints a line holds and whether each has a
visibility column; ``flip_idx`` (optional) lists, for each keypoint, the keypoint it becomes in a
horizontally flipped image (left eye <-> right eye); ``kpt_oks_sigmas`` (optional, ultralytics' key) each
keypoint's OKS tolerance for keypoint AP. Keypoints reach the target as ``keypoints``
``(N, K, 3)``: ``x, y`` in pixels and a visibility ``v`` (> 0 visible), what torchvision's keypoint R-CNN
trains on. As ultralytics reads them: a keypoint without a visibility column is visible unless a
coordinate is negative, and one outside the image is made invisible, then clipped to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from netsculpt.checks import is_int
from netsculpt.errors import DataError

SHAPE_FORM = "[keypoints, 2 or 3] (3 when each keypoint has a visibility column), e.g. kpt_shape: [17, 3]"


def keypoint_fields(
    path: Path, data: dict[str, Any]
) -> tuple[tuple[int, int] | None, tuple[int, ...] | None]:
    """``kpt_shape`` and ``flip_idx`` of a dataset YAML, checked; ``(None, None)`` for a box dataset."""
    shape, flip = data.get("kpt_shape"), data.get("flip_idx")
    if shape is None:
        if flip is not None:
            raise DataError(f"{path}: flip_idx without kpt_shape; add kpt_shape: {SHAPE_FORM}")
        return None, None
    if not (isinstance(shape, list) and len(shape) == 2 and all(map(is_int, shape))) or not (
        shape[0] >= 1 and shape[1] in (2, 3)
    ):
        raise DataError(f"{path}: kpt_shape is {shape!r}; it must be {SHAPE_FORM}")
    count = shape[0]
    if flip is not None and not (
        isinstance(flip, list) and all(map(is_int, flip)) and sorted(flip) == list(range(count))
    ):
        raise DataError(
            f"{path}: flip_idx is {flip!r}; it must name each of the {count} keypoints 0..{count - 1} once, "
            "each keypoint's mirror image (e.g. [0, 2, 1]: keypoints 1 and 2 swap when flipped)"
        )
    return (count, shape[1]), None if flip is None else tuple(flip)


def oks_sigmas(
    path: Path, data: dict[str, Any], kpt_shape: tuple[int, int] | None
) -> tuple[float, ...] | None:
    """``kpt_oks_sigmas`` of a pose YAML, checked: one positive number per keypoint, as ultralytics wants."""
    sigmas = data.get("kpt_oks_sigmas")
    if sigmas is None:
        return None
    count = 0 if kpt_shape is None else kpt_shape[0]
    if not (
        isinstance(sigmas, list)
        and len(sigmas) == count
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in sigmas)
    ):
        raise DataError(
            f"{path}: kpt_oks_sigmas is {sigmas!r}; it must list one positive number per keypoint ({count}, "
            "kpt_shape's first entry): each keypoint's OKS tolerance for keypoint AP"
        )
    return tuple(float(v) for v in sigmas)


def line_form(kpt_shape: tuple[int, int]) -> str:
    count, dims = kpt_shape
    point = "px py v" if dims == 3 else "px py"
    return (
        f"'class cx cy w h' and {count} keypoints '{point}' ({5 + count * dims} columns, kpt_shape "
        f"{list(kpt_shape)}; coordinates normalised to [0, 1] by the image's width and height)"
    )


def read_keypoints(where: str, values: list[float], kpt_shape: tuple[int, int], slack: float) -> np.ndarray:
    """``(K, 3)`` normalised ``x, y, v`` of one line's keypoint columns (checked, clipped)."""
    points = np.array(values, dtype=np.float64).reshape(kpt_shape)
    xy = points[:, :2]
    if not ((xy >= -slack) & (xy <= 1 + slack)).all():
        raise DataError(
            f"{where}: keypoint coordinates outside [0, 1]; YOLO labels are normalised by the image's width "
            "and height (divide pixel values by them)"
        )
    if kpt_shape[1] == 3:
        visible = points[:, 2]
        if not (np.isfinite(visible) & (visible >= 0)).all():  # nan passes a plain < 0 test
            raise DataError(
                f"{where}: a keypoint visibility that is not 0 (not labelled), 1 or 2; fix the line"
            )
    else:
        visible = ((xy[:, 0] >= 0) & (xy[:, 1] >= 0)).astype(np.float64)
    outside = ((xy < 0) | (xy > 1)).any(axis=1)
    return np.column_stack([np.clip(xy, 0, 1), np.where(outside, 0.0, visible)])
