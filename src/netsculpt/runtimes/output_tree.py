"""The structure of a model's output (dicts, lists and tuples of tensors) as plain JSON, so an int8 artefact
whose graph has flat outputs gives back what the float model returned.

An ONNX / OpenVINO graph's outputs are the tensors of ``torch.utils._pytree.tree_flatten(output)`` in
order (the exporter names them ``output0``, ``output1``, ...); this module records the nesting around
them beside the artefact and rebuilds it after a run. Why not pytree's own ``treespec_dumps``: its format
is pytree's private one, and a run folder may be handed over, so the file netsculpt reads back is a small
JSON form it validates node by node (:class:`~netsculpt.errors.CheckpointError` when malformed).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import TreeSpec, keystr, tree_flatten, tree_flatten_with_path

from netsculpt.errors import CheckpointError, ConfigError, a_type, with_article
from netsculpt.fileio import write_json

OUTPUTS_NAME = "model.int8.outputs.json"
FORMAT, VERSION = "netsculpt-output-tree", 1
MAX_DEPTH, MAX_LEAVES = 64, 100_000  # far beyond any model's output; bounds what a handed file can ask
Node = dict[str, Any]
"""``{"kind": "tensor"}``, ``{"kind": "tuple" | "list", "items": [Node, ...]}`` or
``{"kind": "dict" | "ordereddict" | "fields", "keys": [str, ...], "items": [Node, ...]}`` ("fields": a
dict subclass such as Hugging Face's ``ModelOutput``, rebuilt as :class:`Fields`)."""


@dataclass(frozen=True)
class OutputTree:
    """The nesting of a model's output tensors, ``leaves`` of them, in ``tree_flatten`` order."""

    node: Node
    leaves: int

    @classmethod
    def of(cls, output: Any, owner: str) -> OutputTree:
        """The tree of ``output`` as ``owner`` (the model's name, for errors) returned it."""
        for path, leaf in tree_flatten_with_path(output)[0]:
            if not isinstance(leaf, torch.Tensor):
                where = f" at output{keystr(path)}" if path else ""
                cache = (  # duck-typed: a Hugging Face DynamicCache / EncoderDecoderCache
                    "; a Hugging Face model's key/value cache is turned off with config.use_cache = False"
                    if type(leaf).__name__.endswith("Cache")
                    else ""
                )
                raise ConfigError(
                    f"{owner} returns {a_type(leaf)} ({_short(leaf)}){where} among its outputs; an int8 ONNX "
                    "/ OpenVINO graph returns tensors only. Wrap the model so its forward returns only "
                    "tensors (in tuples, lists or dicts with str keys): drop that value or turn it into a "
                    "tensor (torch.as_tensor), or quantize with runtime 'torch' (PT2E keeps any "
                    f"output){cache}"
                )
        leaves, spec = tree_flatten(output)
        return cls(_encode(spec, owner, 0), len(leaves))

    @property
    def is_tensor(self) -> bool:
        return self.node["kind"] == "tensor"

    def rebuild(self, tensors: Sequence[torch.Tensor]) -> Any:
        """``tensors`` (a graph's outputs, in order) nested as the model returned them."""
        if len(tensors) != self.leaves:
            raise CheckpointError(
                f"the output structure holds {self.leaves} tensors, the graph gave {len(tensors)}"
            )
        return _decode(self.node, iter(tensors))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "leaves": self.leaves, "tree": self.node}

    @classmethod
    def from_json(cls, data: Any, where: str) -> OutputTree:
        """Validate ``data`` (read from ``where``) strictly: every node, key and count."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise _bad(where, f"it is not a {FORMAT} version {VERSION} object")
        if set(data) != {"format", "version", "leaves", "tree"}:
            raise _bad(
                where, f"unexpected fields {sorted(set(data) - {'format', 'version', 'leaves', 'tree'})}"
            )
        leaves = _check(data["tree"], where, 0)
        if data["leaves"] != leaves or isinstance(data["leaves"], bool):
            raise _bad(where, f"'leaves' says {data['leaves']!r} but the tree holds {leaves} tensors")
        return cls(data["tree"], leaves)


def _encode(spec: TreeSpec, owner: str, depth: int) -> Node:
    if spec.is_leaf():
        return {"kind": "tensor"}
    if depth >= MAX_DEPTH:
        raise ConfigError(f"{owner}'s output is nested deeper than {MAX_DEPTH} levels; flatten it")
    items = [_encode(child, owner, depth + 1) for child in spec.children()]
    if spec.type in (tuple, list):
        return {"kind": spec.type.__name__, "items": items}
    # torchvision's segmenters return an OrderedDict (its own pytree node type): refused until 2026-12-07
    kind = {dict: "dict", OrderedDict: "ordereddict"}.get(spec.type)
    if kind is None and isinstance(spec.type, type) and issubclass(spec.type, dict):
        kind = "fields"  # a dict subclass (Hugging Face's ModelOutput): rebuilt as a Fields
    if kind is not None and isinstance(spec.context, list) and all(isinstance(k, str) for k in spec.context):
        return {"kind": kind, "keys": list(spec.context), "items": items}
    what = with_article(getattr(spec.type, "__name__", str(spec.type)))
    if kind is not None:
        what = "a dict with non-str keys"
    elif isinstance(spec.context, type) and issubclass(spec.context, tuple):  # pytree's namedtuple node
        what = f"a namedtuple ({spec.context.__name__})"
    raise ConfigError(
        f"{owner} returns {what}; an int8 ONNX / OpenVINO artefact rebuilds only tuples, lists and dicts "
        "with str keys around tensors: wrap the model to return those (a namedtuple as a plain tuple or "
        "dict), or quantize with runtime 'torch' (PT2E keeps any output structure)"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Fields(OrderedDict):
    """A returned dict subclass rebuilt without its class: keys are also attributes, so code reading a
    Hugging Face ``ModelOutput`` as ``out.logits`` or ``out["logits"]`` reads the int8 output the same way
    (fields that were None are absent, as in ``ModelOutput``; ``out[0]`` is not supported)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the output has no field {name!r}; it has {list(self)}") from None


_DICTS: dict[str, type[dict[str, Any]]] = {"dict": dict, "ordereddict": OrderedDict, "fields": Fields}


def _decode(node: Node, tensors: Iterator[torch.Tensor]) -> Any:
    kind = node["kind"]
    if kind == "tensor":
        return next(tensors)
    items = [_decode(item, tensors) for item in node["items"]]
    if kind in _DICTS:
        return _DICTS[kind](zip(node["keys"], items))
    return tuple(items) if kind == "tuple" else items


def _check(node: Any, where: str, depth: int) -> int:
    """The tensor count of a node read from a file, or a CheckpointError naming what is wrong."""
    if depth > MAX_DEPTH:
        raise _bad(where, f"the tree is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or node.get("kind") not in ("tensor", "tuple", "list", *_DICTS):
        raise _bad(where, f"a node is not a tensor / tuple / list / dict node: {str(node)[:80]}")
    fields = {"tensor": {"kind"}, "tuple": {"kind", "items"}, "list": {"kind", "items"}}
    if set(node) != fields.get(node["kind"], {"kind", "keys", "items"}):
        raise _bad(where, f"a {node['kind']} node has fields {sorted(node)}")
    if node["kind"] == "tensor":
        return 1
    if not isinstance(node["items"], list):
        raise _bad(where, f"a {node['kind']} node's items are not a list")
    if node["kind"] in _DICTS:
        keys = node["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _bad(where, "a dict node's keys are not a list of strings")
        if len(set(keys)) != len(keys) or len(keys) != len(node["items"]):
            raise _bad(where, "a dict node's keys are repeated or do not pair with its items")
    count = sum(_check(item, where, depth + 1) for item in node["items"])
    if count > MAX_LEAVES:
        raise _bad(where, f"the tree holds more than {MAX_LEAVES} tensors")
    return count


def _bad(where: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"cannot read the int8 artefact's output structure {where!r}: {why}. Rerun the quantize stage to "
        f"write it again, or delete {OUTPUTS_NAME} to get the graph's first output as a single tensor"
    )


def write_outputs(folder: str | os.PathLike[str], tree: OutputTree) -> Path | None:
    """Record ``tree`` in ``folder`` (atomically); a bare tensor needs no file, and a stale one is removed."""
    path = Path(folder) / OUTPUTS_NAME
    if tree.is_tensor:
        path.unlink(missing_ok=True)
        return None
    return write_json(path, tree.to_json())


def read_outputs(folder: str | os.PathLike[str]) -> OutputTree | None:
    """The output structure recorded in ``folder``; None for a folder without one (a single tensor)."""
    path = Path(folder) / OUTPUTS_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(str(path), f"it is not JSON ({type(exc).__name__}: {exc})") from None
    return OutputTree.from_json(data, str(path))


def graph_outputs(tree: OutputTree | None, count: int, where: str) -> OutputTree | None:
    """``tree`` checked against a graph's ``count`` outputs (``where`` names the graph for errors)."""
    if tree is not None and tree.leaves != count:
        raise CheckpointError(
            f"{OUTPUTS_NAME} beside {where!r} describes {tree.leaves} output tensors but the graph has "
            f"{count}: the files come from different runs; rerun the quantize stage"
        )
    return tree
