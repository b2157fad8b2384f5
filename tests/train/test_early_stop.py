"""Early stopping: decided on a held-out training split alone, resumable, and keeping the best weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from netsculpt.errors import ConfigError
from netsculpt.train import EarlyStopping, TrainConfig, train

from . import _tiny

CONFIG = TrainConfig(epochs=8, batch_size=32, lr=0.1)


def _val_loader() -> DataLoader:
    """Held-out points from the training distribution (another seed of the same blobs, no jitter)."""
    return DataLoader(_tiny.NoisyBlobs(60, seed=5, jitter=0.0), batch_size=32)


def _history(*accs: float) -> list[dict[str, float]]:
    return [{"epoch": i, "val_acc": a} for i, a in enumerate(accs, start=1)]


def test_rule_counts_epochs_without_a_gain() -> None:
    rule = EarlyStopping(patience=2)
    assert rule.best_epoch(_history(0.5, 0.7, 0.7, 0.6)) == 2  # a tie is no gain: the earlier epoch stays
    assert not rule.should_stop(_history(0.5, 0.7, 0.7))
    assert rule.should_stop(_history(0.5, 0.7, 0.7, 0.6))
    assert not EarlyStopping(patience=1, min_epochs=3).should_stop(_history(0.9, 0.8))
    assert EarlyStopping(patience=1, min_delta=0.05).best_epoch(_history(0.5, 0.52, 0.54)) == 1
    with pytest.raises(ConfigError, match="val_acc"):
        rule.best_epoch([{"epoch": 1, "test_acc": 0.9}])


@pytest.mark.parametrize("field", [{"patience": 0}, {"min_delta": -1.0}, {"restore_best": "yes"}])
def test_bad_settings_are_refused(field: dict) -> None:
    with pytest.raises(ConfigError, match="early stopping"):
        EarlyStopping(**field)


def test_needs_a_held_out_loader_that_is_not_the_test_split() -> None:
    train_loader, test_loader = _tiny.loaders()
    with pytest.raises(ConfigError, match="val_loader"):
        train(_tiny.model(), train_loader, test_loader, CONFIG, early_stopping=EarlyStopping())
    with pytest.raises(ConfigError, match="test loader"):
        train(_tiny.model(), train_loader, test_loader, CONFIG, val_loader=test_loader,
              early_stopping=EarlyStopping())  # fmt: skip


def test_stops_when_the_held_out_accuracy_stalls() -> None:
    # lr this small leaves the held-out accuracy exactly where epoch 1 put it: no gain, so with patience 2
    # the run ends after epoch 3 of 8, and the best epoch is the first.
    train_loader, test_loader = _tiny.loaders()
    config = CONFIG.replace(lr=1e-9, momentum=0.0, nesterov=False)
    result = train(_tiny.model(), train_loader, test_loader, config, val_loader=_val_loader(),
                   early_stopping=EarlyStopping(patience=2))  # fmt: skip
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.stopped_early and result.best_epoch == 1
    assert all("val_acc" in h and "val_loss" in h for h in result.history)


def test_decision_never_reads_the_test_split() -> None:
    """The same run against a test split with scrambled labels stops at the same epoch with the same
    weights: only the reported test numbers differ."""
    runs = []
    for scramble in (False, True):
        train_loader, test_loader = _tiny.loaders()
        if scramble:
            data = test_loader.dataset
            data.targets = (data.targets + 1) % _tiny.NUM_CLASSES
        model = _tiny.model()
        result = train(model, train_loader, test_loader, CONFIG, val_loader=_val_loader(),
                       early_stopping=EarlyStopping(patience=2))  # fmt: skip
        runs.append((model, result))
    (m0, r0), (m1, r1) = runs
    assert [h["val_acc"] for h in r0.history] == [h["val_acc"] for h in r1.history]
    assert r0.best_epoch == r1.best_epoch and len(r0.history) == len(r1.history)
    assert [h["test_acc"] for h in r0.history] != [h["test_acc"] for h in r1.history]
    _tiny.assert_same_weights(m0, m1)


def test_the_best_held_out_epoch_is_restored() -> None:
    # reference: the same seeded run without stopping, weights copied after every epoch
    train_loader, test_loader = _tiny.loaders()
    model, kept = _tiny.model(), {}

    def keep(record: dict) -> None:
        kept[record["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    config = CONFIG.replace(lr=2.0)  # a large step makes the held-out accuracy move from epoch to epoch
    full = train(model, train_loader, test_loader, config, val_loader=_val_loader(), on_epoch_end=keep)
    rule = EarlyStopping(patience=len(full.history))  # never stops: only the restore is tested
    best = rule.best_epoch(full.history)
    assert best is not None and best < len(full.history)  # else there would be nothing to restore
    train_loader, test_loader = _tiny.loaders()
    stopped = _tiny.model()
    result = train(stopped, train_loader, test_loader, config, val_loader=_val_loader(), early_stopping=rule)
    assert result.best_epoch == best
    for name, value in stopped.state_dict().items():
        assert torch.equal(value, kept[best][name]), name
    assert result.final_acc == full.history[best - 1]["test_acc"]


def test_resume_stops_where_the_uninterrupted_run_does(tmp_path: Path) -> None:
    rule = EarlyStopping(patience=2)
    config = CONFIG.replace(lr=0.5)
    train_loader, test_loader = _tiny.loaders()
    straight = _tiny.model()
    val = _val_loader()
    expected = train(straight, train_loader, test_loader, config, val_loader=val, early_stopping=rule)
    train_loader, test_loader = _tiny.loaders()
    train(_tiny.model(), train_loader, test_loader, config, out_dir=tmp_path, val_loader=_val_loader(),
          early_stopping=rule, on_epoch_end=lambda r: r["epoch"] == 1)  # fmt: skip
    for _ in range(2):  # the second call finds a finished (possibly stopped) run and trains no further
        train_loader, test_loader = _tiny.loaders()
        resumed = _tiny.model()
        result = train(resumed, train_loader, test_loader, config, out_dir=tmp_path, resume=True,
                       val_loader=_val_loader(), early_stopping=rule)  # fmt: skip
        assert [h["val_acc"] for h in result.history] == [h["val_acc"] for h in expected.history]
        assert result.best_epoch == expected.best_epoch and result.stopped_early
        _tiny.assert_same_weights(straight, resumed)
    with pytest.raises(ConfigError, match="early stopping"):
        train(_tiny.model(), *_tiny.loaders(), config, out_dir=tmp_path, resume=True,
              val_loader=_val_loader(), early_stopping=EarlyStopping(patience=5))  # fmt: skip
