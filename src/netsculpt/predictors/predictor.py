"""A trained predictor as one value: network + featuriser + target scaling, saved without pickle.

``save`` writes ``NAME.safetensors`` (the weights) and ``NAME.json`` (kind, sizes, scaling and the
fingerprint of the model and search space it was trained for). ``load`` refuses a file whose
fingerprint differs from the space it is asked to serve, naming what differs: a predictor learnt on
another model's layers or another width range would rank candidates on nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import atomic_write, load_state_dict_file, write_json
from netsculpt.predictors.features import GraphFeatures
from netsculpt.predictors.models import GCN, MLP, PREDICTORS, deterministic, fit

VERSION = 1


class Predictor:
    """Predicts the search metric (lower is better) of width vectors; ``kind`` is "gcn" or "mlp"."""

    def __init__(
        self,
        kind: str,
        features: GraphFeatures,
        fingerprint: dict[str, Any],
        seed: int = 0,
        loss: str = "mse",
    ):
        PREDICTORS.get(kind)  # unknown kinds fail listing the registered ones
        self.kind, self.features, self.fingerprint, self.seed = kind, features, fingerprint, seed
        self.loss = loss
        self.net: nn.Module = (
            GCN(features.n_features, features.adjacency) if kind == "gcn" else MLP(len(features.space))
        )
        self.mean, self.std, self.trained_on = 0.0, 1.0, 0

    def inputs(self, counts_list: Sequence[np.ndarray]) -> torch.Tensor:
        return self.features.graph(counts_list) if self.kind == "gcn" else self.features.vector(counts_list)

    def fit(
        self, counts_list: Sequence[np.ndarray], targets: Sequence[float], epochs: int = 300
    ) -> Predictor:
        self.mean, self.std = fit(
            self.net,
            self.inputs(counts_list),
            np.asarray(targets),
            epochs=epochs,
            seed=self.seed,
            loss=self.loss,
        )
        self.trained_on = len(counts_list)
        return self

    def predict(self, counts_list: Sequence[np.ndarray]) -> np.ndarray:
        if not len(counts_list):
            return np.zeros(0)
        with deterministic(self.seed), torch.no_grad():
            out = self.net(self.inputs(counts_list)).double().numpy()
        return out * self.std + self.mean

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, str(tmp)))
        meta = {
            "version": VERSION,
            "kind": self.kind,
            "mean": self.mean,
            "std": self.std,
            "trained_on": self.trained_on,
            "seed": self.seed,
            "loss": self.loss,
            "fingerprint": self.fingerprint,
        }
        return write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: str | Path, features: GraphFeatures, fingerprint: dict[str, Any]) -> Predictor:
        """The predictor saved at ``path`` (``.json`` + ``.safetensors``), if it was trained for this
        ``fingerprint``; otherwise ConfigError naming the fields that differ."""
        from netsculpt.jsoncheck import read_json_file

        path = Path(path)
        meta_path, weights = path.with_suffix(".json"), path.with_suffix(".safetensors")
        if not meta_path.is_file() or not weights.is_file():
            raise CheckpointError(f"no predictor at {path}: expected {meta_path.name} and {weights.name}")
        meta = read_json_file(meta_path)
        if not isinstance(meta, dict) or meta.get("version") != VERSION or "fingerprint" not in meta:
            raise CheckpointError(f"{meta_path} is not a netsculpt predictor (version {VERSION})")
        saved = meta["fingerprint"]
        diff = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        if diff:
            raise ConfigError(
                f"refusing the predictor {meta_path}: it was trained for another model or search "
                f"space "
                f"(different {', '.join(diff)}); train one on this model (--predictor gcn does it online)"
            )
        out = cls(
            str(meta["kind"]), features, fingerprint, int(meta.get("seed", 0)), str(meta.get("loss", "mse"))
        )
        try:  # a damaged or foreign weights file is the user's to fix, not a traceback from torch
            out.net.load_state_dict(load_state_dict_file(weights))
        except RuntimeError as exc:
            raise CheckpointError(
                f"the predictor weights {weights} do not fit its {meta['kind']} network "
                f"({str(exc).splitlines()[0]}); delete the predictor folder and train it again"
            ) from None
        out.net.eval()
        out.mean, out.std, out.trained_on = float(meta["mean"]), float(meta["std"]), int(meta["trained_on"])
        return out


def rank_quality(predicted: Sequence[float], actual: Sequence[float]) -> dict[str, float | None]:
    """Kendall τ and Spearman ρ (scipy.stats) between two score lists; None where undefined (fewer
    than two points, or a constant list), so the result stays valid JSON for the search state."""
    from scipy.stats import kendalltau, spearmanr

    out: dict[str, float | None] = {"kendall": None, "spearman": None, "n": len(predicted)}
    if len(predicted) >= 2:
        for name, fn in (("kendall", kendalltau), ("spearman", spearmanr)):
            value = float(fn(predicted, actual).statistic)
            out[name] = value if np.isfinite(value) else None
    return out
