"""Built-in channel rules. Importing this package registers them."""

from netsculpt.graph.rules import (
    attention,
    contract,
    elementwise,
    fallback,
    huggingface,
    indexing,
    layers,
    recurrent,
    shape,
    vision,
)

__all__ = [
    "attention",
    "contract",
    "elementwise",
    "fallback",
    "huggingface",
    "indexing",
    "layers",
    "recurrent",
    "shape",
    "vision",
]
