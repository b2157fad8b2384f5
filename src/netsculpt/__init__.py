"""netsculpt: make trained PyTorch CNNs smaller and faster, with measured proof."""

from __future__ import annotations

__version__ = "0.1.0"
