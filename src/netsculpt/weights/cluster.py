"""``cluster_model``: one call a pipeline stage makes to palettize a model, whatever the method.

Each config type has one handler (torchao style): :class:`DKMConfig` fine-tunes with DKM and snaps,
:class:`KMeansConfig` palettizes post-training. The handlers are registered by config type, so a new
method is one dataclass plus one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.registry import Registry
from netsculpt.train import TrainResult, train
from netsculpt.weights.config import PaletteConfig
from netsculpt.weights.dkm import DKMConfig, prepare_dkm_, snap_dkm_
from netsculpt.weights.kmeans import KMeansConfig, kmeans_palettize_

Handler = Callable[..., nn.Module]
#: Clustering methods by name (the CLI's ``--method``), each a (config class, handler) pair.
METHODS: Registry[tuple[type[PaletteConfig], Handler]] = Registry("clustering method")


def _cluster_dkm(
    model: nn.Module, config: DKMConfig, train_loader: Any, test_loader: Any, **train_kwargs: Any
) -> nn.Module:
    if train_loader is None or test_loader is None:
        raise ConfigError("DKM fine-tunes the model: pass train_loader and test_loader to cluster_model")
    prepare_dkm_(model, config)
    result = train(model, train_loader, test_loader, config.train, **train_kwargs)
    snap_dkm_(model, config.dense_dtype)
    model.netsculpt_cluster_result = result  # type: ignore[assignment]  # the fine-tuning history
    return model


def _cluster_kmeans(
    model: nn.Module, config: KMeansConfig, train_loader: Any = None, test_loader: Any = None, **_: Any
) -> nn.Module:
    return kmeans_palettize_(model, config)


METHODS.register("dkm", (DKMConfig, _cluster_dkm))
METHODS.register("kmeans", (KMeansConfig, _cluster_kmeans))


def config_for(method: str, **fields: Any) -> PaletteConfig:
    """A config of the class registered for ``method`` (e.g. ``config_for("dkm", bits=2)``)."""
    cls, _ = METHODS.get(method)
    return cls(**fields)


def cluster_model(
    model: nn.Module,
    config: PaletteConfig,
    train_loader: Any = None,
    test_loader: Any = None,
    **train_kwargs: Any,
) -> nn.Module:
    """Palettize ``model`` in place as ``config`` says and return it (weights are then ``lut[indices]``).

    ``train_kwargs`` go to :func:`netsculpt.train.train` for methods that fine-tune (``out_dir``, ...).
    After DKM, ``model.netsculpt_cluster_result`` holds the fine-tuning :class:`TrainResult`.
    """
    materialised(model, "cluster")  # codebooks are fitted to the weights: there are none yet
    for name in METHODS:
        cls, handler = METHODS.get(name)
        if type(config) is cls:
            return handler(model, config, train_loader, test_loader, **train_kwargs)
    known = ", ".join(METHODS.get(n)[0].__name__ for n in METHODS)
    raise ConfigError(f"no clustering handler for {type(config).__name__}; registered configs: {known}")


def cluster_result(model: nn.Module) -> TrainResult | None:
    """The fine-tuning history :func:`cluster_model` left on ``model`` (None after k-means)."""
    return getattr(model, "netsculpt_cluster_result", None)
