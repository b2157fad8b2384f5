"""A Hugging Face model's base: its class name and config, rebuilt only as a class transformers lists
(netsculpt/saved/huggingface.py, docs/security.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.saved import huggingface

T = pytest.importorskip("transformers")

_CONFIG = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
_CONFIG["vocab_size"] = 100


def _bert() -> torch.nn.Module:
    torch.manual_seed(0)
    return T.BertForSequenceClassification(T.BertConfig(num_labels=3, **_CONFIG)).eval()


def _ids() -> torch.Tensor:
    return torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def _saved(tmp_path: Path, model: torch.nn.Module | None = None) -> Path:
    folder = tmp_path / "m"
    ns.save(ns.prune(model if model is not None else _bert(), _ids(), ratio=0.5), folder)
    return folder


def _edit_base(folder: Path, **changes: object) -> None:
    path = folder / "netsculpt.json"
    document = json.loads(path.read_text())
    document["base"].update(changes)
    path.write_text(json.dumps(document))


def test_eager_attention_is_recorded_and_rebuilt(tmp_path: Path) -> None:
    """eager and sdpa attention differ in the last bits: the rebuilt model runs the saved model's kernel."""
    torch.manual_seed(0)
    config = T.BertConfig(num_labels=3, attn_implementation="eager", **_CONFIG)
    folder = _saved(tmp_path, T.BertForSequenceClassification(config).eval())
    loaded = ns.load(folder)
    assert loaded.config._attn_implementation == "eager"


def test_a_from_pretrained_model_reloads_bit_for_bit(tmp_path: Path) -> None:
    """``from_pretrained`` (through an auto class) leaves the architecture its config describes."""
    _bert().save_pretrained(tmp_path / "hf")
    model = T.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    small = ns.prune(model, _ids(), ratio=0.5)
    ns.save(small, tmp_path / "m")
    loaded = ns.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(_ids()).logits, small(_ids()).logits)
    assert type(loaded) is T.BertForSequenceClassification


def test_a_model_changed_after_it_was_built_is_saved_as_its_class(tmp_path: Path) -> None:
    """Its config no longer makes it: rebuilding from the config would load a different architecture."""
    model = _bert()
    model.classifier = torch.nn.Linear(32, 5)
    folder = _saved(tmp_path, model)
    assert json.loads((folder / "netsculpt.json").read_text())["base"]["kind"] == "user"
    with pytest.raises(CheckpointError, match="pass model=BertForSequenceClassification"):
        ns.load(folder)
    fresh = _bert()
    fresh.classifier = torch.nn.Linear(32, 5)
    assert ns.load(folder, model=fresh) is not None


@pytest.mark.parametrize("name", ["PreTrainedModel", "AutoModel", "Conv1D", "os"])
def test_only_model_classes_transformers_lists_are_built(tmp_path: Path, name: str) -> None:
    folder = _saved(tmp_path)
    _edit_base(folder, **{"class": name})
    with pytest.raises(CheckpointError, match=f"base class '{name}' is not a model class listed"):
        ns.load(folder)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"auto_map": {"AutoModel": "evil.modeling:Model"}}, r"config\.auto_map"),
        ({"attn_implementation": "kernels-community/flash-attn"}, r"config\.attn_implementation = "),
        ({"text_config": {"experts_implementation": "someone/kernel"}}, r"config\.text_config\.experts_impl"),
    ],
)
def test_a_config_naming_remote_code_is_refused(tmp_path: Path, change: dict, named: str) -> None:
    """``auto_map`` names trust_remote_code classes; an "org/repo" kernel is fetched from the Hub and run."""
    folder = _saved(tmp_path)
    config = json.loads((folder / "netsculpt.json").read_text())["base"]["config"]
    _edit_base(folder, config={**config, **change})
    with pytest.raises(CheckpointError, match=f"names remote code \\({named}"):
        ns.load(folder)
    _edit_base(folder, config=config, attn_implementation="kernels-community/flash-attn")
    with pytest.raises(CheckpointError, match="attn_implementation"):  # the schema's pattern
        ns.load(folder)


def test_a_trust_remote_code_class_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    path = folder / "netsculpt.json"
    document = json.loads(path.read_text())
    document["base"] = {"kind": "user", "class": "transformers_modules.someone.modeling_x.XForCausalLM"}
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"trust_remote_code\), which netsculpt never runs"):
        ns.load(folder)


def test_sizes_come_from_the_meta_build_before_any_memory(tmp_path: Path, monkeypatch) -> None:
    folder = _saved(tmp_path)
    config = json.loads((folder / "netsculpt.json").read_text())["base"]["config"]
    _edit_base(folder, config={**config, "vocab_size": 10**9})
    with pytest.raises(CheckpointError, match="would hold 32,0"):
        ns.load(folder)
    _edit_base(folder, config=config)
    monkeypatch.setattr(huggingface, "MAX_MODULES", 10)  # num_hidden_layers: 10**9 makes modules, not values
    with pytest.raises(CheckpointError, match="builds more than 10 modules"):
        ns.load(folder)


def test_without_transformers_the_error_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    folder = _saved(tmp_path)
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    with pytest.raises(CheckpointError, match="transformers is not installed: pip install transformers"):
        ns.load(folder)


def test_netsculpt_does_not_import_transformers() -> None:
    code = "import sys, netsculpt, netsculpt.graph.rules; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
