"""HAQ-style bit search: exact byte prices, budget met on disk, mixed bits reload bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import netsculpt as ns
from netsculpt.errors import ConfigError, PruningError
from netsculpt.search.evaluator import take_batches
from netsculpt.search.executors import ProcessExecutor, SerialExecutor
from netsculpt.weights import KMeansConfig, iter_palettes, palettized_bits
from netsculpt.weights.bit_space import HEADER_SLACK, BitSpace, apply_bits_
from netsculpt.weights.haq import BitSearchConfig, search_bits
from netsculpt.weights.mixed_cluster import cluster_auto
from netsculpt.weights.storage import packed_size_bytes
from tests.search import _tiny


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    train, val = _tiny.loaders()
    return _tiny.trained_model(), train, val


def test_predicted_bytes_match_the_packed_file(trained) -> None:
    model, _, _ = trained
    model = _tiny.TinyCNN().eval()
    model.load_state_dict(trained[0].state_dict())
    space = BitSpace(model, KMeansConfig())
    assert [layer.name for layer in space.layers] == ["conv1", "conv2", "conv3", "fc"]
    for bits in ([1, 2, 3, 4], [6, 1, 5, 2], [7, 8, 8, 5]):
        predicted = space.nbytes(bits)
        probe = _tiny.TinyCNN().eval()
        probe.load_state_dict(model.state_dict())
        space_probe = BitSpace(probe, KMeansConfig())
        apply_bits_(space_probe, bits)
        assert abs(packed_size_bytes(probe) - predicted) <= HEADER_SLACK


@pytest.mark.parametrize("method", ["agent", "genetic", "nsga2"])
def test_searched_bits_meet_the_budget_and_reload_exactly(trained, tmp_path: Path, method) -> None:
    source, train, val = trained
    model = _tiny.TinyCNN().eval()
    model.load_state_dict(source.state_dict())
    uniform3 = BitSpace(model, KMeansConfig()).nbytes([3, 3, 3, 3])
    search = BitSearchConfig(method=method, episodes=6, warmup=2, pop_size=4, generations=2, seed=0)
    search.agent.batch_size = 4
    clustered, result = cluster_auto(model, KMeansConfig(), uniform3, train, val, search=search)
    assert result.history["measured_bytes"] <= uniform3
    assert palettized_bits(clustered) == {f"{n}.weight": b for n, b in result.bits.items()}
    ns.save(clustered, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").stat().st_size <= uniform3
    loaded = ns.load(tmp_path / "m", model=_tiny.TinyCNN())
    for key, value in clustered.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert {k: p.bits for k, p in iter_palettes(loaded)} == palettized_bits(clustered)


def test_unreachable_budget_is_a_clear_error(trained) -> None:
    source, train, val = trained
    model = _tiny.TinyCNN().eval()
    model.load_state_dict(source.state_dict())
    with pytest.raises(PruningError, match="can never be met"):
        cluster_auto(model, KMeansConfig(), 100, train, val, search=BitSearchConfig(episodes=3, warmup=1))
    with pytest.raises(ConfigError, match="budget_bytes"):
        cluster_auto(model, KMeansConfig(), -5, train, val)
    assert not list(iter_palettes(model))  # nothing of the search is left on the model


def test_nothing_to_act_on(trained) -> None:
    model = torch.nn.Sequential(torch.nn.ReLU())
    with pytest.raises(ConfigError, match="no layer was selected"):
        BitSpace(model, KMeansConfig())
    assert np.isfinite(HEADER_SLACK)


class _Counting(SerialExecutor):
    """Scores in this process, counts the jobs, and dies after ``limit`` of them (a killed search)."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self.limit, self.jobs = limit, 0

    def map(self, jobs):
        if self.limit is not None and self.jobs + len(jobs) > self.limit:
            raise KeyboardInterrupt
        self.jobs += len(jobs)
        return super().map(jobs)


def _space(trained) -> tuple[BitSpace, list, int]:
    source, _, val = trained
    model = _tiny.TinyCNN().eval()
    model.load_state_dict(source.state_dict())
    space = BitSpace(model, KMeansConfig())
    return space, take_batches(val, 2, "held-out"), space.nbytes([3, 3, 3, 3])


@pytest.mark.parametrize("method", ["agent", "genetic"])
def test_an_interrupted_bit_search_resumes_where_it_stopped(trained, tmp_path: Path, method) -> None:
    space, batches, budget = _space(trained)
    search = BitSearchConfig(method=method, episodes=6, warmup=2, pop_size=4, generations=3, seed=0)
    search.agent.batch_size = 4
    whole = _Counting()
    expected = search_bits(space, budget, batches, search, out_dir=tmp_path / "whole", executor=whole)
    cut = _Counting(limit=5)
    with pytest.raises(KeyboardInterrupt):
        search_bits(space, budget, batches, search, out_dir=tmp_path / "cut", executor=cut)
    with pytest.raises(ConfigError, match="resume"):
        search_bits(space, budget, batches, search, out_dir=tmp_path / "cut")
    rest = _Counting()
    resumed = search_bits(
        space, budget, batches, search, out_dir=tmp_path / "cut", resume=True, executor=rest
    )
    assert resumed.bits == expected.bits
    assert cut.jobs > 0 and rest.jobs == whole.jobs - cut.jobs  # scores saved before the kill: not redone
    other = BitSearchConfig(method=method, episodes=6, warmup=2, pop_size=4, generations=3, seed=1)
    with pytest.raises(ConfigError, match="different"):
        search_bits(space, budget, batches, other, out_dir=tmp_path / "cut", resume=True)


@pytest.mark.slow
def test_bit_search_on_worker_processes_matches_this_process(trained) -> None:
    space, batches, budget = _space(trained)
    search = BitSearchConfig(method="genetic", pop_size=4, generations=2, seed=0)
    here = search_bits(space, budget, batches, search)
    there = search_bits(space, budget, batches, search, executor=ProcessExecutor(2))
    assert there.bits == here.bits and there.predicted_bytes == here.predicted_bytes
