"""Image files of your own detection / segmentation data: which files are images, and reading one.

Shared by the YOLO reader (``yolo.py``) and the mask-folder reader (``masks.py``), so both accept the same
suffixes and fail the same way on a file that is not a readable image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from netsculpt.errors import DataError

# what ultralytics counts as an image, so a folder yields the same files; one PIL cannot decode (HEIC
# without its plugin, DNG) is then named when read, not skipped
IMAGE_SUFFIXES = (".avif", ".bmp", ".dng", ".heic", ".heif", ".jp2", ".jpeg", ".jpg", ".mpo", ".png", ".tif",
                  ".tiff", ".webp")  # fmt: skip


def list_images(folder: Path, what: str) -> list[Path]:
    """Every image under ``folder`` (sub-folders too), sorted, so the order never depends on the disk."""
    if not folder.is_dir():
        raise DataError(f"{what}: the image folder {str(folder)!r} does not exist; create it or fix the path")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}")
    return files


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


def read_image(
    path: Path, channels: int, size: tuple[int, int] | None = None, *, upright: bool = False
) -> torch.Tensor:
    """``(channels, H, W)`` float in [0, 1]; resized bilinearly to ``size`` ``(H, W)`` when given.

    ``upright`` turns a photo as its EXIF orientation says, as OpenCV's ``imread`` does: YOLO labels are
    normalised to the image as ultralytics reads it, not to the stored pixel grid."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = (ImageOps.exif_transpose(im) if upright else im).convert("L" if channels == 1 else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
    except OSError as exc:  # not an image, truncated: name the file, not PIL's class
        raise DataError(f"{path}: not a readable image ({exc})") from None
    return (pixels[None] if channels == 1 else pixels.permute(2, 0, 1)).float() / 255


def check_channels(channels: object) -> int:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    return int(channels)  # type: ignore[call-overload]
