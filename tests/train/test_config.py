"""TrainConfig: JSON round trip, validation messages, presets."""

from __future__ import annotations

import json
import re

import pytest

from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.train import PRESETS, TrainConfig


def test_json_round_trip_is_exact() -> None:
    config = TrainConfig(
        epochs=3, optimizer="adamw", lr=1e-3, grad_clip=1.5, warmup_epochs=1, seed=4, augment_shift=1
    )
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_default_round_trip_keeps_none_grad_clip() -> None:
    data = json.loads(json.dumps(TrainConfig().to_dict()))
    assert data["grad_clip"] is None and data["version"] == TrainConfig.VERSION
    assert TrainConfig.from_dict(data) == TrainConfig()


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("optimizer", "rmsprop", "use one of sgd, adamw"),
        ("schedule", "linear", "use one of cosine, step, constant"),
        ("epochs", 0, "epochs must be an integer >= 1"),
        ("lr", 0.0, "lr must be > 0"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("label_smoothing", 1.0, "label_smoothing=1.0 must be in [0, 1)"),
        ("momentum", 1.0, "momentum=1.0 must be in [0, 1)"),
        ("grad_clip", -1.0, "grad_clip must be > 0"),
        ("warmup_epochs", 15, "warmup_epochs=15 leaves no epoch"),
        ("batch_size", True, "batch_size must be an integer"),
        ("augment_shift", -1, "augment_shift must be an integer >= 0"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, phrase: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(phrase)):
        TrainConfig(**{field: value})


def test_nesterov_without_momentum_is_refused() -> None:
    with pytest.raises(ConfigError, match="nesterov=True needs momentum > 0"):
        TrainConfig(momentum=0.0)
    assert TrainConfig(momentum=0.0, nesterov=False).momentum == 0.0


def test_unknown_keys_and_versions_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown training config keys \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="version 99"):
        TrainConfig.from_dict({"version": 99})


def test_presets_build_valid_configs() -> None:
    for name in PRESETS:
        assert isinstance(TrainConfig.preset(name), TrainConfig)
    lenet = TrainConfig.preset("lenet5_mnist5k", epochs=2)
    assert lenet.epochs == 2 and lenet.augment is True
    with pytest.raises(UnknownNameError, match="lenet5_mnist5k"):
        TrainConfig.preset("lenet5_mnist")
