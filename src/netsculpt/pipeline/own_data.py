"""Your own files in a dense recipe: COCO JSON, a YOLO dataset YAML, segmentation mask folders, or the
Cityscapes / ADE20K folders as their archives unzip.

``data: {name: coco | yolo | masks | cityscapes | ade20k, root: DIR, options: {...}}``: relative file
options are relative to ``data.root``. What each takes and needs is checked when the recipe is read
(``check_own_options``), the files themselves when the run builds its loaders. The test split is
labelled through the training split (COCO's categories, the masks' class count), so the same class
never gets two labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from netsculpt.errors import DataError

COCO_FILES = ("train_annotations", "train_images", "test_annotations", "test_images")
OPTIONS = {
    "coco": (*COCO_FILES, "channels", "size", "kpt_sigmas", "flip"),
    "yolo": ("yaml", "test_split", "channels", "size", "kpt_sigmas", "flip"),
    "masks": ("root", "train_split", "test_split", "num_classes", "channels", "size", "flip"),
    "cityscapes": ("root", "channels", "size", "flip"),
    "ade20k": ("root", "channels", "size", "flip"),
}
NEEDS = {
    "coco": (COCO_FILES, "a COCO annotation file and an image folder for each split (the test split is only "
             "reported)"),
    "yolo": (("yaml",), "the dataset YAML ultralytics trains on (path, train, val, names)"),
    "masks": (("root",), "the folder holding images/<split> + masks/<split> (or VOC's JPEGImages + "
              "SegmentationClass)"),
    "cityscapes": (("root",), "the folder holding leftImg8bit/ and gtFine/ (trains on train, reports on "
                   "val)"),
    "ade20k": (("root",), "the ADEChallengeData2016 folder (trains on training, reports on validation)"),
}  # fmt: skip
# Cityscapes' frames are 2048x1024: a quarter of each side keeps the 2:1 shape at CPU-sized cost
DEFAULT_SIZE = {"coco": 320, "yolo": 320, "masks": 256, "cityscapes": [256, 512], "ade20k": 256}
SEGMENTATION = ("masks", "cityscapes", "ade20k")


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def check_own_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` (a recipe error naming the field) for a missing or mistyped option."""
    files, what = NEEDS[name]
    missing = [k for k in files if k not in options]
    if missing:
        raise ValueError(f"data {name!r} needs data.options {', '.join(missing)}: {what}")
    for key in files:
        if not isinstance(options[key], str) or not options[key]:
            raise ValueError(f"data.options.{key} must be a path, got {options[key]!r}")
    if options.get("channels", 3) not in (1, 3):
        raise ValueError(f"data.options.channels must be 1 or 3, got {options['channels']!r}")
    size = options.get("size", DEFAULT_SIZE[name])
    pair = isinstance(size, list) and len(size) == 2 and name in SEGMENTATION
    if not all(isinstance(v, int) and v >= 8 for v in (size if pair else [size])):
        form = "an integer >= 8 or [height, width]" if name in SEGMENTATION else "an integer >= 8"
        raise ValueError(f"data.options.size must be {form} (the example input's side), got {size!r}")
    if name == "yolo" and options.get("test_split", "val") not in ("val", "test"):
        raise ValueError(f"data.options.test_split must be val or test, got {options['test_split']!r}")
    sigmas = options.get("kpt_sigmas")
    if sigmas is not None and not (isinstance(sigmas, list) and sigmas and all(_positive(v) for v in sigmas)):
        raise ValueError(
            f"data.options.kpt_sigmas must be a list of positive numbers, one per keypoint (keypoint AP's "
            f"OKS tolerance; COCO's person joints use 0.025..0.107), got {sigmas!r}"
        )
    flip = options.get("flip", 0)
    if not (isinstance(flip, int | float) and not isinstance(flip, bool) and 0 <= flip <= 1):
        raise ValueError(
            f"data.options.flip is the chance a training image is mirrored left-right, a number in [0, 1] "
            f"(ultralytics' fliplr default is 0.5), got {flip!r}"
        )
    classes = options.get("num_classes")
    if classes is not None and not (isinstance(classes, int) and 2 <= classes <= 255):
        raise ValueError(f"data.options.num_classes must be an integer in 2..255, got {classes!r}")


def own_shape(name: str, options: dict[str, Any]) -> tuple[int, int, int, int]:
    """The example input: ``channels`` x ``size`` (a segmentation ``size`` may be [height, width])."""
    size = options.get("size", DEFAULT_SIZE[name])
    height, width = (size, size) if isinstance(size, int) else size
    return (1, int(options.get("channels", 3)), int(height), int(width))


def own_dataset(recipe: Any, split: str) -> Dataset:
    """One split of the recipe's own files (``data.limit`` keeps its first samples)."""
    name, options = recipe.data.name, recipe.data.options
    root = Path(recipe.data.root).expanduser() if recipe.data.root else Path()
    channels = int(options.get("channels", 3))
    if name == "masks":
        dataset = _masks(root / options["root"], split, options, channels)
    elif name in SEGMENTATION:
        dataset = _benchmark(name, root / options["root"], split, options, channels)
    else:
        dataset = _detection(name, root, split, options, channels)
    limit = recipe.data.limit
    return Subset(dataset, range(min(limit, len(dataset)))) if limit is not None else dataset


def _detection(name: str, root: Path, split: str, options: dict[str, Any], channels: int) -> Dataset:
    if name == "yolo":
        from netsculpt.data.yolo import YoloDetection

        split_name = "train" if split == "train" else options.get("test_split", "val")
        dataset: Any = YoloDetection(root / options["yaml"], split_name, channels=channels)
        where, fix = f"{options['yaml']} ({split_name})", f"point {split_name}: at labelled images"
    else:
        from netsculpt.data.coco import CocoDetection

        # the test file is labelled through the training file's categories, whatever its own list order
        train = CocoDetection(root / options["train_annotations"], root / options["train_images"], channels)
        if split == "train":
            return train
        files = root / options[f"{split}_annotations"], root / options[f"{split}_images"]
        dataset = CocoDetection(*files, channels=channels, categories=train.categories)
        where, fix = options[f"{split}_annotations"], f"point {split}_annotations at a file with annotations"
    if split != "train" and dataset.box_count() == 0:  # refused before any training, not after an epoch
        raise DataError(f"{where}: no (non-crowd) ground-truth boxes, so mAP on it is undefined; {fix}")
    return dataset


def _masks(folder: Path, split: str, options: dict[str, Any], channels: int) -> Dataset:
    from netsculpt.data.masks import MaskSegmentation

    size = options.get("size", DEFAULT_SIZE["masks"])
    size = size if isinstance(size, int) else tuple(size)
    train_split = options.get("train_split", "train")
    classes = options.get("num_classes")
    if classes is None:  # the test masks are read with the training masks' class count
        classes = MaskSegmentation(folder, train_split, size=size, channels=channels).num_classes
    split_name = train_split if split == "train" else options.get("test_split", "val")
    return MaskSegmentation(folder, split_name, size=size, channels=channels, num_classes=classes)


def _benchmark(name: str, folder: Path, split: str, options: dict[str, Any], channels: int) -> Dataset:
    """Cityscapes or ADE20K: training split to train on, the validation split to report (their test
    splits' labels are not public)."""
    from netsculpt.data.ade20k import ADE20KSegmentation
    from netsculpt.data.cityscapes import CityscapesSegmentation

    size = options.get("size", DEFAULT_SIZE[name])
    size = size if isinstance(size, int) else tuple(size)
    reader = CityscapesSegmentation if name == "cityscapes" else ADE20KSegmentation
    return reader(folder, "train" if split == "train" else "val", size=size, channels=channels)


def task_options(recipe: Any) -> dict[str, Any]:
    """What the task takes from the data section: keypoint AP's ``kpt_sigmas`` (COCO / YOLO files), from
    ``data.options`` or else a YOLO pose YAML's ``kpt_oks_sigmas``."""
    name, options = recipe.data.name, recipe.data.options
    sigmas = options.get("kpt_sigmas") if name in ("coco", "yolo") else None
    if sigmas is None and name == "yolo":
        from netsculpt.data.yolo import load_yolo_yaml

        root = Path(recipe.data.root).expanduser() if recipe.data.root else Path()
        sigmas = load_yolo_yaml(root / options["yaml"]).kpt_sigmas
    return {} if sigmas is None else {"kpt_sigmas": [float(v) for v in sigmas]}


def own_classes(recipe: Any) -> int:
    """Background + the detection classes, or the masks' class count (background included)."""
    dataset = own_dataset(recipe, "train")
    dataset = dataset.dataset if isinstance(dataset, Subset) else dataset
    if recipe.data.name in SEGMENTATION:
        return int(dataset.num_classes)
    return 1 + len(dataset.categories)
