"""A damaged phase result on resume: a CheckpointError naming the file and the phase folder to delete
(it was a SafetensorError traceback from inside safetensors), and following that advice ends bit for
bit where an undamaged run ends."""

from __future__ import annotations

import shutil

import pytest
import torch

from netsculpt.errors import CheckpointError
from netsculpt.sparsity import SparsityConfig, sparsify
from netsculpt.train import TrainConfig
from tests.sparsity.test_run import _loaders, _net

CONFIG = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=1)


def test_a_truncated_phase_model_names_the_phase_to_redo(tmp_path) -> None:
    reference = _net()
    sparsify(reference, CONFIG, *_loaders(), TrainConfig(epochs=3), out_dir=tmp_path)
    phase = tmp_path / "phase-00"
    weights = phase / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy that did not finish
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*delete the folder .*phase-00"):
        sparsify(_net(), CONFIG, *_loaders(), TrainConfig(epochs=3), out_dir=tmp_path, resume=True)
    shutil.rmtree(phase)  # the advice
    resumed = _net()
    sparsify(resumed, CONFIG, *_loaders(), TrainConfig(epochs=3), out_dir=tmp_path, resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
