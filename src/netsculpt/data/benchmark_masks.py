"""Segmentation benchmarks whose masks hold the benchmark's raw label ids (Cityscapes, ADE20K).

Each reader pairs an image with its mask by the benchmark's own file naming and maps raw ids to training
ids through a 256-entry table; a value the table has no entry for is a ``DataError`` naming the file (a
colour or instance mask passed for a label mask), never a silent class. Pairs are checked when the dataset
is made (every image has a mask of its own size, from the headers); ``size`` resizes images bilinearly and
masks by nearest neighbour, before the table is applied (the same as after: no id is ever blended).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from netsculpt.data.dense_files import check_channels, read_image
from netsculpt.data.masks import IGNORE, check_sizes, read_mask, size_pair
from netsculpt.errors import DataError

UNKNOWN = -1  # a table entry for a raw value the benchmark never writes


def id_table(train_ids: dict[int, int], ignored: range | tuple[int, ...]) -> np.ndarray:
    """A 256-entry lookup: ``train_ids`` raw -> training id, ``ignored`` raw -> 255, the rest unknown."""
    table = np.full(256, UNKNOWN, np.int64)
    table[list(ignored)] = IGNORE
    for raw, train in train_ids.items():
        table[raw] = train
    return table


def resolve_split(split: str, aliases: dict[str, str], root: Path, what: str) -> str:
    """The benchmark's folder name for ``split`` (``train`` -> ADE20K's ``training``)."""
    name = aliases.get(split, split)
    if name not in aliases.values():
        raise DataError(
            f"{root}: {what} has splits {', '.join(dict.fromkeys(aliases.values()))}, not {split!r}; set the "
            "split to one of them"
        )
    return name


class BenchmarkSegmentation(Dataset):
    """``(image, class map)`` pairs: ``(C, H, W)`` float in [0, 1] and ``(H, W)`` int64 training ids.

    Subclasses set ``pairs`` (image, mask) and ``num_classes``, and say per mask which table reads it
    (``table_of``) and, for an error, what its values should be.
    """

    num_classes: int
    pairs: list[tuple[Path, Path]]

    def __init__(self, size: int | tuple[int, int] | None, channels: int) -> None:
        self.channels, self.size = check_channels(channels), size_pair(size)

    def check(self, where: str) -> None:
        """Refuse an empty split and any mask not the size of its image; ``where`` names the split."""
        if not self.pairs:
            raise DataError(f"{where}: no images in this split; fix the root or the split")
        check_sizes(self.pairs)

    def table_of(self, mask: Path) -> tuple[np.ndarray, str]:
        """The table that reads ``mask`` and, for an error, what its values should be (a benchmark may
        ship two kinds of label mask, as Cityscapes' labelIds and labelTrainIds)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path, self.channels, self.size)
        raw = read_mask(mask_path, self.size)
        table, form = self.table_of(mask_path)
        bad = (raw < 0) | (raw >= len(table))
        bad[~bad] = table[raw[~bad]] == UNKNOWN
        if bad.any():
            values = sorted({int(v) for v in np.unique(raw[bad])})[:5]
            raise DataError(
                f"{mask_path}: pixel values {values} are not {form}; is this the benchmark's label mask "
                "(not its colour or instance image)? Fix or drop the file"
            )
        return image, torch.from_numpy(table[raw])
