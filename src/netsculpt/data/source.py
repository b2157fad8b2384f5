"""A dataset by name plus how to load it: what a recipe's ``data`` section and the CLI's ``--data`` flags
both describe, so the pipeline and the commands build loaders and read dataset info one way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader

from netsculpt.data.api import dataset_info, make_loaders
from netsculpt.data.base import DatasetInfo


@dataclass(frozen=True)
class DataSource:
    """Dataset ``name`` with its loading options (see :func:`netsculpt.data.make_loaders`)."""

    name: str
    root: str | None = None
    resize: int | None = None
    channels: int | None = None
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def loaders(
        self, batch_size: int, *, seed: int = 0, augment: bool = False, shift: int | None = None
    ) -> tuple[DataLoader, DataLoader]:
        """Train and test loaders; ``seed`` fixes the subset and the batch order."""
        return make_loaders(
            self.name,
            batch_size=batch_size,
            root=self.root,
            resize=self.resize,
            channels=self.channels,
            limit=self.limit,
            seed=seed,
            augment=augment,
            shift=shift,
            **self.options,
        )

    def info(self) -> DatasetInfo:
        """Classes, channels and image size a model sees from this source."""
        return dataset_info(
            self.name, root=self.root, resize=self.resize, channels=self.channels, **self.options
        )
