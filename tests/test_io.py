"""Save / load without pickle and without running code a file names; ONNX export of pruned models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.io import read_spec
from netsculpt.measure import export_onnx, run_onnx


def _spec(folder) -> dict:
    return json.loads((folder / "netsculpt.json").read_text())


def _edit_spec(folder, change) -> None:
    data = _spec(folder)
    change(data)
    (folder / "netsculpt.json").write_text(json.dumps(data))


def test_save_load_pruned_zoo_model_identical(tmp_path) -> None:
    x = torch.randn(2, 3, 32, 32)
    model = ns.create_model("resnet20_cifar").eval()
    small = ns.prune(model, x, ratio=0.5)
    small = ns.prune(small, x, ratio=0.25)  # two plans, replayed in order
    ns.save(small, tmp_path / "m")
    spec = _spec(tmp_path / "m")
    assert spec["version"] == 3 and spec["base"]["name"] == "resnet20_cifar"
    assert [e["kind"] for e in spec["edits"]] == ["prune", "prune"]
    assert spec["base_shapes"]["conv1.weight"] == [16, 3, 3, 3]  # the unpruned base, not the pruned one
    loaded = ns.load(tmp_path / "m")
    assert torch.equal(loaded(x), small.eval()(x))
    assert not list(tmp_path.glob("**/*.pt")) and not list(tmp_path.glob("**/*.pkl"))


def test_save_torchvision_model(tmp_path) -> None:
    x = torch.randn(1, 3, 64, 64)
    model = ns.create_model("torchvision:mobilenet_v3_small", num_classes=10).eval()
    small = ns.prune(model, x, ratio=0.5)
    ns.save(small, tmp_path)
    assert torch.allclose(ns.load(tmp_path)(x), small.eval()(x))


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: torchvision.models.resnet18(num_classes=10), ("torchvision:resnet18", 10, 3)),
        (lambda: torchvision.models.mobilenet_v2(), ("torchvision:mobilenet_v2", 1000, 3)),
        (lambda: torchvision.models.regnet_x_400mf(num_classes=7), ("torchvision:regnet_x_400mf", 7, 3)),
        # MNASNet refuses a state dict without its module version (found by tools/save_sweep.py)
        (lambda: torchvision.models.mnasnet0_5(num_classes=3), ("torchvision:mnasnet0_5", 3, 3)),
    ],
)
def test_user_built_torchvision_model_saves_and_loads_without_builder(tmp_path, build, expected) -> None:
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    small = ns.prune(model, x, ratio=0.5)
    assert not hasattr(model, "netsculpt_spec")  # the user's model carries nothing of netsculpt
    ns.save(small, tmp_path)
    base = _spec(tmp_path)["base"]
    assert (base["kind"], base["name"], base["num_classes"], base["in_channels"]) == ("netsculpt", *expected)
    assert torch.equal(ns.load(tmp_path)(x), small.eval()(x))


def test_user_built_timm_model_with_own_head_and_channels(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=5, in_chans=1).eval()
    x = torch.randn(1, 1, 48, 48)
    small = ns.prune(model, x, ratio=0.5)
    ns.save(small, tmp_path)
    base = _spec(tmp_path)["base"]
    assert (base["name"], base["num_classes"], base["in_channels"]) == ("timm:resnet10t", 5, 1)
    assert torch.equal(ns.load(tmp_path)(x), small.eval()(x))


def test_user_changed_layer_is_not_mistaken_for_the_library_builder(tmp_path) -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    model.conv1 = torch.nn.Conv2d(3, 64, 7, stride=1, padding=3, bias=False)  # same shapes, other stride
    ns.save(ns.prune(model, torch.randn(1, 3, 32, 32), ratio=0.5), tmp_path)
    assert _spec(tmp_path)["base"] == {"kind": "user", "class": "torchvision.models.resnet.ResNet"}


class OwnNet(torch.nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3)
        self.bn = torch.nn.BatchNorm2d(width)
        self.head = torch.nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(x)).relu().mean((2, 3)))


def make_own_net() -> torch.nn.Module:
    return OwnNet()


def test_own_class_saves_and_loads_onto_a_supplied_base(tmp_path) -> None:
    model = OwnNet().eval()
    x = torch.randn(2, 3, 8, 8)
    small = ns.prune(model, x, ratio=0.5)
    ns.save(small, tmp_path)
    assert _spec(tmp_path)["base"] == {"kind": "user", "class": "tests.test_io.OwnNet"}
    with pytest.raises(CheckpointError, match=r"pass model=OwnNet\(\.\.\.\)"):
        ns.load(tmp_path)
    fresh = OwnNet()
    loaded = ns.load(tmp_path, model=fresh)
    assert torch.equal(loaded(x), small.eval()(x))
    assert fresh.conv.out_channels == 8  # the supplied model is copied, not changed
    assert torch.equal(ns.load(tmp_path, trust_builder="tests.test_io:make_own_net")(x), small(x))


def test_supplied_base_of_another_architecture_names_the_first_mismatch(tmp_path) -> None:
    ns.save(ns.prune(OwnNet().eval(), torch.randn(1, 3, 8, 8), ratio=0.5), tmp_path)
    with pytest.raises(CheckpointError, match=r"'conv\.weight' has shape \[6, 3, 3, 3\].*\[8, 3, 3, 3\]"):
        ns.load(tmp_path, model=OwnNet(width=6))
    with pytest.raises(CheckpointError, match=r"model= must be an nn\.Module"):
        ns.load(tmp_path, model="OwnNet")  # type: ignore[arg-type]


def test_a_named_builder_runs_only_when_trusted_by_that_exact_name(tmp_path) -> None:
    model = OwnNet()
    ns.save(model, tmp_path, builder="tests.test_io:make_own_net")
    with pytest.raises(CheckpointError, match=r"trust_builder='tests\.test_io:make_own_net'"):
        ns.load(tmp_path)
    with pytest.raises(CheckpointError, match="names a different builder"):
        ns.load(tmp_path, trust_builder="tests.test_io:OwnNet")
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(ns.load(tmp_path, trust_builder="tests.test_io:make_own_net")(x), model.eval()(x))


def test_loading_never_runs_code_the_file_names(tmp_path, monkeypatch) -> None:
    """The issue's exploit: a spec naming os:system. Nothing is imported, nothing runs."""
    ns.save(ns.create_model("lenet5"), tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    hostile = {"kind": "builder", "builder": "os:system", "kwargs": {"command": "touch PWNED"}}
    _edit_spec(tmp_path / "m", lambda d: d.update(base=hostile))
    with pytest.raises(CheckpointError, match="asks to run the builder 'os:system'"):
        ns.load(tmp_path / "m")
    legacy = {"format": "netsculpt-model", "version": 1, "spec": {"builder": "os:system", "plans": []}}
    (tmp_path / "m" / "netsculpt.json").write_text(json.dumps(legacy))
    with pytest.raises(CheckpointError, match="asks to run the builder"):
        ns.load(tmp_path / "m")
    for name in ("os.system", "torchvision:../../os", "timm:no_such_arch_xyz"):
        _edit_spec(
            tmp_path / "m", lambda d, n=name: d.update(version=3, base={"kind": "netsculpt", "name": n})
        )
        with pytest.raises(CheckpointError):
            ns.load(tmp_path / "m")
    assert not (tmp_path / "PWNED").exists()


def test_version_1_files_still_load(tmp_path) -> None:
    """Folders written before edits had kinds ({"spec": {..., "plans": [...]}}) are migrated on read."""
    x = torch.randn(1, 1, 28, 28)
    small = ns.prune(ns.create_model("lenet5").eval(), x, ratio=0.5)
    ns.save(small, tmp_path)
    data = _spec(tmp_path)
    edit = data["edits"][0]
    legacy = {
        "format": "netsculpt-model",
        "version": 1,
        "spec": {
            "name": "lenet5",
            "num_classes": 10,
            "in_channels": 1,
            "kwargs": {},
            "plans": [{"plan": edit["plan"], "input_shapes": edit["input_shapes"]}],
        },
        "extra": {},
    }
    (tmp_path / "netsculpt.json").write_text(json.dumps(legacy))
    assert torch.equal(ns.load(tmp_path)(x), small.eval()(x))
    assert ns.io.read_spec(tmp_path)["edits"][0]["kind"] == "prune"


def test_options_that_are_not_data_are_refused_at_save(tmp_path) -> None:
    model = ns.create_model("torchvision:resnet18", norm_layer=torch.nn.BatchNorm2d)
    with pytest.raises(CheckpointError, match="not plain data"):
        ns.save(model, tmp_path)
    assert not (tmp_path / "netsculpt.json").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_extra_holding_nan_or_inf_is_refused_at_save_naming_the_field(tmp_path, value: float) -> None:
    """A NaN in ``extra`` used to be saved, and the folder then failed to load ("not valid JSON: NaN")."""
    model = ns.create_model("lenet5", num_classes=10)
    with pytest.raises(CheckpointError, match=r"extra\['history'\]\[1\] is (nan|inf|-inf)"):
        ns.save(model, tmp_path, extra={"epochs": 2, "history": [0.5, value]})
    assert not (tmp_path / "netsculpt.json").exists() and not (tmp_path / "model.safetensors").exists()
    ns.save(model, tmp_path, extra={"epochs": 2, "history": [0.5, None]})  # what the error suggests
    ns.load(tmp_path)
    assert read_spec(tmp_path)["extra"]["history"] == [0.5, None]


def test_missing_and_corrupt_saves_are_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"netsculpt\.json is missing"):
        ns.load(tmp_path)
    model = ns.create_model("lenet5")
    ns.save(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        ns.load(tmp_path)


def test_pruned_model_exports_to_onnx_with_same_outputs(tmp_path) -> None:
    x = torch.randn(1, 3, 32, 32)
    small = ns.prune(ns.create_model("mobilenetv2_cifar").eval(), x, ratio=0.5).eval()
    path = export_onnx(small, x, tmp_path / "m.onnx")
    (onnx_out,) = run_onnx(path, x)
    with torch.no_grad():
        torch_out = small(x).numpy()
    assert np.abs(onnx_out - torch_out).max() / np.abs(torch_out).max() <= 1e-4


def test_save_refuses_what_is_not_a_model_or_a_folder(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"takes a torch\.nn\.Module, got str"):
        ns.save("resnet18", tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"is a file; ns\.save writes a folder"):
        ns.save(torch.nn.Linear(2, 2), tmp_path / "file")


def test_trace_refuses_what_is_not_a_model() -> None:
    from netsculpt.errors import TraceError

    with pytest.raises(TraceError, match=r"expected a torch\.nn\.Module, got str"):
        ns.trace("resnet18", torch.randn(1, 3, 8, 8))


def test_wrong_argument_types_are_named(tmp_path) -> None:
    model = ns.create_model("lenet5")
    with pytest.raises(ConfigError, match=r"ns.save: directory= takes a path .*; got None \(NoneType\)"):
        ns.save(model, None)
    with pytest.raises(
        ConfigError, match=r"ns.save: extra= takes a dict of plain data \(JSON\), or None; got 3"
    ):
        ns.save(model, tmp_path / "m", extra=3)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot create the folder .*file/m'.*: Not a directory"):
        ns.save(model, tmp_path / "file" / "m")  # was a raw NotADirectoryError
    with pytest.raises(ConfigError, match=r"ns.load: directory= takes a path .*; got 3 \(int\)"):
        ns.load(3)
    ns.save(model, tmp_path / "ok")
    with pytest.raises(ConfigError, match=r"ns.load: trust_builder= takes 'package.module:function'"):
        ns.load(tmp_path / "ok", trust_builder=3)


def test_save_refuses_an_int8_artefact_naming_load_artefact(tmp_path) -> None:
    """ns.save wrote a 112-byte folder (the artefact's module holds no weights) that ns.load refused."""
    from netsculpt.weights.quantize import quantize_int8

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    x = torch.randn(1, 3, 8, 8)
    q = quantize_int8(net.eval(), x, [torch.randn(4, 3, 8, 8)], tmp_path / "int8")
    with pytest.raises(ConfigError, match=r"already written as .*model\.int8\.onnx.*load_artefact\(folder\)"):
        ns.save(q, tmp_path / "saved")
    assert not (tmp_path / "saved").exists()


class _Holder(torch.nn.Module):
    """An object holding the network, as ultralytics' YOLO holds its DetectionModel in ``.model``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = OwnNet()


def test_load_onto_another_class_says_which_class_the_folder_needs(tmp_path) -> None:
    ns.save(ns.prune(OwnNet().eval(), torch.randn(1, 3, 8, 8), ratio=0.5), tmp_path)
    with pytest.raises(CheckpointError, match=r"no 'conv.weight'.*saved from a model of class \S+OwnNet and "
                       r"model= is of class \S+_Holder: pass an unpruned OwnNet"):  # fmt: skip
        ns.load(tmp_path, model=_Holder())
    assert isinstance(ns.load(tmp_path, model=_Holder().model), OwnNet)
