"""Weight compression: DKM / k-means palettization, packed storage, int8 quantization, low-rank.

```python
from netsculpt.weights import DKMConfig, cluster_model
model = cluster_model(model, DKMConfig(bits=4), train_loader, test_loader)
ns.save(model, "out/m")            # n-bit indices + fp16 tables; ns.load restores them bit for bit
```
See docs/weights.md.
"""

from __future__ import annotations

from netsculpt.weights.cluster import METHODS, cluster_model, cluster_result, config_for
from netsculpt.weights.config import PaletteConfig, default_filter, skip_first_last
from netsculpt.weights.dkm import DKMConfig, DKMWeight, dkm_layers, prepare_dkm_, snap_dkm_
from netsculpt.weights.kmeans import KMeansConfig, fit_codebook, kmeans_palettize_
from netsculpt.weights.layout import PaletteSpec
from netsculpt.weights.lowrank import LowRankConfig, factorize_, lowrank_model
from netsculpt.weights.packing import pack_bits, unpack_bits
from netsculpt.weights.palette import Palette, iter_palettes, palettized_bits
from netsculpt.weights.quantize import Int8Config, OnnxModule, quantize_int8
from netsculpt.weights.storage import packed_size_bytes, round_dense_

__all__ = [
    "METHODS",
    "DKMConfig",
    "DKMWeight",
    "Int8Config",
    "KMeansConfig",
    "LowRankConfig",
    "OnnxModule",
    "Palette",
    "PaletteConfig",
    "PaletteSpec",
    "cluster_model",
    "cluster_result",
    "config_for",
    "default_filter",
    "dkm_layers",
    "factorize_",
    "fit_codebook",
    "iter_palettes",
    "kmeans_palettize_",
    "lowrank_model",
    "pack_bits",
    "packed_size_bytes",
    "palettized_bits",
    "prepare_dkm_",
    "quantize_int8",
    "round_dense_",
    "skip_first_last",
    "snap_dkm_",
    "unpack_bits",
]
