"""The pieces of distributed training that need no second process: sharding, context, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from netsculpt.errors import ConfigError
from netsculpt.train import DistContext, TrainConfig, ddp, init_distributed, train

from . import _tiny


def test_without_torchrun_training_is_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed()
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed
    assert ddp.all_reduce_sum([1.0, 2.0], ctx, torch.device("cpu")) == [1.0, 2.0]
    assert ddp.broadcast_object({"a": 1}, ctx) == {"a": 1}


def test_a_half_set_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="launch with torchrun"):
        init_distributed()


def test_eval_shards_cover_every_sample_exactly_once() -> None:
    shards = [list(ddp.ShardSampler(10, DistContext(rank=r, world_size=3))) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10))


def test_train_shards_split_each_global_batch_between_ranks() -> None:
    data = _tiny.NoisyBlobs(24, seed=1, jitter=0.0)
    whole = [batch[1].tolist() for batch in DataLoader(data, batch_size=8)]
    halves = [
        [b[1].tolist() for b in ddp.shard_train_loader(DataLoader(data, batch_size=8), DistContext(r, 2), 0)]
        for r in range(2)
    ]
    assert len(halves[0]) == len(halves[1]) == len(whole) == 3  # the same number of optimizer steps
    for k in range(3):
        assert len(halves[0][k]) == len(halves[1][k]) == 4
        assert sorted(halves[0][k] + halves[1][k]) == sorted(whole[k])


def test_ranks_get_their_own_augmentation_stream() -> None:
    streams = []
    for rank in range(2):
        data = _tiny.NoisyBlobs(8, seed=1)
        loader = ddp.shard_train_loader(DataLoader(data, batch_size=4, shuffle=True), DistContext(rank, 2), 0)
        streams.append(loader.dataset.generator.initial_seed())
    assert streams[0] == _tiny.NoisyBlobs(8, seed=1).generator.initial_seed()  # rank 0 is unchanged
    assert streams[0] != streams[1]


def test_global_batch_must_split_evenly() -> None:
    loader = DataLoader(_tiny.NoisyBlobs(10, seed=1), batch_size=5)
    with pytest.raises(ConfigError, match="does not split evenly over 2 processes"):
        ddp.shard_train_loader(loader, DistContext(0, 2), 0)


def test_resume_with_another_process_count_is_refused(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    config = TrainConfig(epochs=2, lr=0.1)
    train(_tiny.model(), train_loader, test_loader, config, out_dir=tmp_path, on_epoch_end=lambda r: True)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["world_size"] = 2  # as if two ranks had written it
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match=r"written by 2 process\(es\) but this run has 1"):
        train(_tiny.model(), train_loader, test_loader, config, out_dir=tmp_path, resume=True)
