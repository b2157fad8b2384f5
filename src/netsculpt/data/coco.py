"""Your own detection data: a COCO-format annotation file plus a folder of images.

The file is read as JSON (never unpickled) and checked before any image is opened, so a malformed file
fails with the field at fault. Boxes (COCO ``[x, y, w, h]``) become ``(x1, y1, x2, y2)``; category ids
become contiguous labels ``1..K`` in the order of ``categories`` (0 is the background class, as
torchvision's detectors expect); polygon segmentations become ``uint8`` masks. ``iscrowd`` annotations
are not trained on, as COCO's own training code does, but kept as ``crowd_boxes`` / ``crowd_labels``:
COCO's evaluation ignores detections matched to them rather than counting them false positives.
Keypoint files (``categories[].keypoints``, ``skeleton``, annotations' ``keypoints``) add ``keypoints``
``(N, K, 3)`` to the target (``netsculpt.data.coco_keypoints``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from netsculpt.data.coco_keypoints import check_keypoints, keypoint_layout, keypoint_tensor
from netsculpt.errors import DataError


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"COCO annotation file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file ({exc})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: a COCO annotation file needs a list {key!r}")
    return data


def _check_entries(path: Path, data: dict[str, Any]) -> None:
    """Every category and image entry well formed, ids unique, file names inside the image folder: a
    duplicate image id had merged two images' boxes, and an absolute file_name was opened anywhere."""
    for key, needs in (("categories", ("id",)), ("images", ("id", "file_name"))):
        seen: set[int] = set()
        for i, entry in enumerate(data[key]):
            if not isinstance(entry, dict) or any(k not in entry for k in needs):
                raise DataError(f"{path}: {key}[{i}] must be an object with {' and '.join(needs)}")
            if not isinstance(entry["id"], int) or isinstance(entry["id"], bool):
                raise DataError(f"{path}: {key}[{i}] has id {entry['id']!r}; COCO ids are integers")
            if entry["id"] in seen:
                raise DataError(f"{path}: {key} lists id {entry['id']} twice")
            seen.add(entry["id"])
            name = entry.get("file_name")
            if key == "images" and (
                not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts
            ):
                raise DataError(
                    f"{path}: images[{i}] has file_name {name!r}; it must be a path inside the image folder"
                )
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{path}: annotations[{i}] must be an object, got {type(ann).__name__}")


def _check_annotation(path: Path, ann: dict[str, Any], images: set[int], categories: set[int]) -> None:
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
        raise DataError(f"{path}: annotation {ann.get('id')!r} needs bbox [x, y, width, height]")
    if box[2] <= 0 or box[3] <= 0:
        raise DataError(f"{path}: annotation {ann.get('id')!r} has an empty box {box}")
    if ann.get("image_id") not in images:
        raise DataError(
            f"{path}: annotation {ann.get('id')!r} names unknown image_id {ann.get('image_id')!r}"
        )
    if ann.get("category_id") not in categories:
        raise DataError(
            f"{path}: annotation {ann.get('id')!r} names unknown category_id {ann.get('category_id')!r}"
        )


class CocoDetection(Dataset):
    """``(image, target)`` pairs from ``annotations`` (COCO JSON) and the images under ``image_dir``.

    ``image`` is ``(C, H, W)`` float in [0, 1] (``channels`` 1 or 3); ``target`` holds ``boxes``,
    ``labels``, ``image_id``, ``keypoints`` in a keypoint file (``keypoint_names``, ``skeleton``) and,
    when every kept annotation has a polygon segmentation, ``masks``.
    """

    def __init__(
        self,
        annotations: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        channels: int = 3,
        categories: list[int] | None = None,
    ):
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        path = Path(annotations)
        data = _load(path)
        _check_entries(path, data)
        self.image_dir, self.channels = Path(image_dir), channels
        own = [c["id"] for c in data["categories"]]
        # a test file is labelled through the training file's categories (``categories``): its own list
        # order (or a list of only the ids it uses) had given the same class another label
        self.categories = list(categories) if categories is not None else own
        unknown = sorted(set(own) - set(self.categories))
        if unknown:
            raise DataError(
                f"{path}: category ids {unknown[:5]} are not among the training file's categories"
            )
        names = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
        self.names = [names.get(cid, str(cid)) for cid in self.categories]
        self.label_of = {cid: i + 1 for i, cid in enumerate(self.categories)}
        self.images = {int(im["id"]): im for im in data["images"]}
        self.num_keypoints, self.keypoint_names, self.skeleton = keypoint_layout(path, data)
        by_image: dict[int, list[dict[str, Any]]] = {i: [] for i in self.images}
        self.crowds: dict[int, list[dict[str, Any]]] = {i: [] for i in self.images}
        for ann in data["annotations"]:
            _check_annotation(path, ann, set(self.images), set(self.categories))
            check_keypoints(path, ann, self.num_keypoints)
            (self.crowds if ann.get("iscrowd", 0) else by_image)[int(ann["image_id"])].append(ann)
        self.ids = sorted(self.images)
        self.annotations = by_image
        missing = [
            self.images[i]["file_name"]
            for i in self.ids
            if not (self.image_dir / self.images[i]["file_name"]).is_file()
        ]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) listed in {path} are not in {self.image_dir}: {missing[:3]}"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def box_count(self) -> int:
        """Ground-truth boxes (crowd regions left out): mAP on a split with none is undefined."""
        return sum(len(a) for a in self.annotations.values())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from PIL import Image

        image_id = self.ids[index]
        info = self.images[image_id]
        try:
            with Image.open(self.image_dir / info["file_name"]) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                width, height = im.size
                pixels = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
        except OSError as exc:  # not an image, truncated: name the file, not PIL's class
            raise DataError(f"{self.image_dir / info['file_name']}: not a readable image ({exc})") from None
        image = (pixels[None] if self.channels == 1 else pixels.permute(2, 0, 1)).float() / 255
        anns = self.annotations[image_id]
        boxes = _xyxy([a["bbox"] for a in anns])
        target = {
            "boxes": boxes,
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(image_id),
        }
        if self.num_keypoints:
            target["keypoints"] = keypoint_tensor(anns, self.num_keypoints)
            if anns and all(isinstance(a.get("area"), (int, float)) and a["area"] > 0 for a in anns):
                target["area"] = torch.tensor([float(a["area"]) for a in anns])  # COCO's OKS scale
        crowds = self.crowds[image_id]
        if crowds:  # not trained on; COCO's evaluation ignores detections matched to them
            target["crowd_boxes"] = _xyxy([a["bbox"] for a in crowds])
            target["crowd_labels"] = torch.tensor([self.label_of[a["category_id"]] for a in crowds])
        if anns and all(isinstance(a.get("segmentation"), list) and a["segmentation"] for a in anns):
            target["masks"] = torch.stack([_polygon_mask(a["segmentation"], height, width) for a in anns])
        return image, target


def _xyxy(boxes: list[list[float]]) -> torch.Tensor:
    """COCO ``[x, y, w, h]`` boxes as a ``(K, 4)`` float32 tensor of ``(x1, y1, x2, y2)``."""
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32).reshape(-1, 4)


def _polygon_mask(polygons: list[list[float]], height: int, width: int) -> torch.Tensor:
    """COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` filled into one ``(H, W)`` uint8 mask."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        if len(poly) >= 6:
            draw.polygon([(float(poly[k]), float(poly[k + 1])) for k in range(0, len(poly) - 1, 2)], fill=1)
    return torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy())
