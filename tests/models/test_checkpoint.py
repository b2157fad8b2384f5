"""Checkpoints load only tensors, round-trip exactly, and a wrong one is explained, never unpickled."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from netsculpt.errors import CheckpointError
from netsculpt.models import create_model


def outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(123)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("fmt", ["safetensors", "torch", "torch-wrapped"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, fmt: str) -> None:
    trained = create_model("resnet20_cifar", num_classes=7)
    trained.train()(torch.randn(4, 3, 32, 32))  # move BN running statistics off their initial values
    state = trained.state_dict()
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "w.pt"
        torch.save({"state_dict": state, "epoch": 3} if fmt == "torch-wrapped" else state, path)
    torch.manual_seed(99)  # a different random init, so equality can only come from the file
    loaded = create_model("resnet20_cifar", num_classes=7, checkpoint=path)
    assert torch.equal(outputs(loaded), outputs(trained))


def test_missing_batch_counters_are_tolerated(tmp_path: Path) -> None:
    state = {k: v for k, v in create_model("resnet20_cifar").state_dict().items() if "num_batches" not in k}
    torch.save(state, tmp_path / "w.pt")
    create_model("resnet20_cifar", checkpoint=tmp_path / "w.pt")


def test_wrong_class_count_names_the_first_shape_mismatch(tmp_path: Path) -> None:
    torch.save(create_model("resnet20_cifar", num_classes=100).state_dict(), tmp_path / "c100.pt")
    with pytest.raises(CheckpointError) as info:
        create_model("resnet20_cifar", num_classes=10, checkpoint=tmp_path / "c100.pt")
    message = str(info.value)
    assert "fc.weight: (100, 64) in the file, (10, 64) in the model" in message
    assert "'resnet20_cifar' (num_classes=10, in_channels=3)" in message


def test_wrong_architecture_lists_a_few_keys(tmp_path: Path) -> None:
    torch.save(create_model("resnet20_cifar", shortcut="B").state_dict(), tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): layer2\.0\.shortcut\.0\.weight") as info:
        create_model("resnet20_cifar", shortcut="A", checkpoint=tmp_path / "b.pt")
    assert "shortcut='A'" in str(info.value)


def test_prefixed_keys_get_a_hint(tmp_path: Path) -> None:
    state = {f"net.{k}": v for k, v in create_model("lenet5").state_dict().items()}
    torch.save(state, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match=r"starts with 'net\.'"):
        create_model("lenet5", checkpoint=tmp_path / "p.pt")


@pytest.mark.parametrize("name", ["w.pt", "w.safetensors"])
def test_corrupt_file_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError):
        create_model("lenet5", checkpoint=path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model("lenet5", checkpoint=tmp_path / "absent.safetensors")


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("via", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_never_run(tmp_path: Path, via: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"conv1.weight": torch.zeros(1), "evil": _Exploit(marker)}
    if via == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(CheckpointError, match="weights_only"):
        create_model("lenet5", checkpoint=path)
    assert not marker.exists()


def test_checkpoint_holding_non_tensors_is_refused(tmp_path: Path) -> None:
    torch.save({"conv1.weight": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="state dict"):
        create_model("lenet5", checkpoint=tmp_path / "mixed.pt")
