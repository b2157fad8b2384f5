"""What every weight-clustering config shares: bits, codebook layout, and which layers it touches.

Configs are small dataclasses next to their handler (DKM in ``dkm.py``, k-means in ``kmeans.py``).
``filter_fn(module, name)`` chooses layers, as in torchao; ``layer_bits`` maps shell patterns of module
names to a bit width, so one config can give the sensitive first layer 8 bits and the rest 2.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.layer_kinds import is_weight_layer
from netsculpt.weights.layout import MAX_BITS, PaletteSpec

FilterFn = Callable[[nn.Module, str], bool]
DENSE_DTYPES = ("float32", "float16")


def default_filter(module: nn.Module, name: str) -> bool:
    """Every convolution and linear layer (Hugging Face's transposed ``Conv1D`` too: with ``group_size``
    its codebook groups run over the stored rows, which are its input features)."""
    return is_weight_layer(module)


@dataclass
class PaletteConfig:
    """Shared fields. ``group_size`` output channels share a codebook (None: one per tensor).

    ``dense_dtype="float16"`` rounds the tensors that stay dense (biases, norm layers, skipped layers)
    to fp16 when clustering finishes, so they are stored in half the bytes and still reload bit for bit.
    """

    VERSION: ClassVar[int] = 1

    bits: int = 4
    group_size: int | None = None
    vector_dim: int = 1
    layer_bits: dict[str, int] = field(default_factory=dict)
    dense_dtype: str = "float32"
    seed: int = 0
    filter_fn: FilterFn | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for label, bits in [
            ("bits", self.bits),
            *((f"layer_bits[{k!r}]", v) for k, v in self.layer_bits.items()),
        ]:
            if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
                raise ConfigError(f"{label} must be an integer in 1..{MAX_BITS}, got {bits!r}")
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise ConfigError(f"group_size must be a positive integer or None, got {self.group_size!r}")
        if not isinstance(self.vector_dim, int) or self.vector_dim < 1:
            raise ConfigError(f"vector_dim must be a positive integer, got {self.vector_dim!r}")
        if self.dense_dtype not in DENSE_DTYPES:
            raise ConfigError(
                f"dense_dtype must be one of {', '.join(DENSE_DTYPES)}, got {self.dense_dtype!r}"
            )

    def spec_for(self, name: str) -> PaletteSpec:
        """The layout for module ``name``: the last matching ``layer_bits`` pattern wins."""
        bits = self.bits
        for pattern, value in self.layer_bits.items():
            if fnmatch.fnmatchcase(name, pattern):
                bits = value
        return PaletteSpec(bits=bits, group_size=self.group_size, vector_dim=self.vector_dim)

    def select(self, model: nn.Module) -> list[tuple[str, nn.Module, PaletteSpec]]:
        """Layers to cluster, with their layouts; a layer with fewer points than centroids is skipped.

        ``filter_fn`` chooses among modules whose ``weight`` has an output-channel dim (2-D or more).
        """
        chosen = []
        keep = self.filter_fn or default_filter
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter) or weight.dim() < 2 or not keep(module, name):
                continue  # norm layers' 1-D scales are never clustered, whatever filter_fn says
            spec = self.spec_for(name)
            spec.check(tuple(weight.shape), name or type(module).__name__)
            if weight.numel() // spec.vector_dim // spec.groups(tuple(weight.shape)) >= spec.k:
                chosen.append((name, module, spec))
        if not chosen:
            raise ConfigError(
                "no layer was selected for clustering: filter_fn accepted no conv/linear layer with at least "
                "2**bits weights per codebook; check filter_fn and bits"
            )
        return chosen

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``filter_fn`` is code, not data, and is left out)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "filter_fn"}
        return {"version": self.VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaletteConfig:
        data = dict(data)
        version = data.pop("version", cls.VERSION)
        if version != cls.VERSION:
            raise ConfigError(f"{cls.__name__} version {version!r} is not supported (expected {cls.VERSION})")
        known = {f.name for f in dataclasses.fields(cls)} - {"filter_fn"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**data)


def skip_first_last(model: nn.Module) -> FilterFn:
    """A ``filter_fn`` keeping every conv/linear layer except the first and the last one (in module order)."""
    names = [name for name, module in model.named_modules() if is_weight_layer(module)]
    ends = {names[0], names[-1]} if names else set()
    return lambda module, name: is_weight_layer(module) and name not in ends
