"""Fuzzing every file netsculpt reads: hypothesis strategies that corrupt real files, and the readers.

Each reader starts from a real, valid file that netsculpt (or the format's own library) wrote, and
hypothesis corrupts it: JSON fields deleted, retyped, made huge, negative, NaN or doubled; bytes
truncated, flipped or inserted; headers that lie about sizes, offsets and dtypes; attack payloads
(pickle reduce calls, YAML alias bombs and python tags). A case passes when the reader either loads
the file or raises a ``NetsculptError``: any other exception is a crash, a finding.

``tests/test_fuzz_readers.py`` runs a bounded number of cases per reader; ``benchmarks/robustness.py``
runs many and prints the counts. Reader families with their own module: ``tests/_fuzz_masked.py``
(packed format 4) and ``tests/_fuzz_datasets.py`` (IDX, CIFAR pickle); ``READERS`` below lists them all.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
import struct
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netsculpt.errors import NetsculptError
from tests._fuzz_datasets import _cifar_cases, _cifar_seed, _idx_cases, _idx_seed

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([0, -1, 1 << 31, 1 << 62, 10**30, "os:system", "../../etc", ""]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def json_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``doc`` (the root included)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += json_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:20]):
            out += json_paths(value, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> str:
    """``doc`` with one to three corruptions, serialised (NaN / Infinity / duplicate keys included)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(json_paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "grow", "negate", "extra", "nan"]))
        if not path:
            doc = draw(JSON_VALUE) if op == "replace" else doc
            continue
        parent, key = _parent(doc, path), path[-1]
        value = parent[key]
        if op == "replace":
            parent[key] = draw(JSON_VALUE)
        elif op == "delete":
            del parent[key]
        elif op == "grow":  # bounded, so the harness itself never exhausts memory
            if isinstance(value, int) and not isinstance(value, bool):
                parent[key] = (value * 10**9 + 1) << 40
            elif isinstance(value, str):
                parent[key] = (value or "x") * (100_000 // max(1, len(value)))
            else:
                parent[key] = [0] * 100_000
        elif op == "negate" and isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = -value - 1
        elif op == "extra" and isinstance(value, dict):
            value[draw(st.text(min_size=1, max_size=8))] = draw(JSON_VALUE)
        elif op == "nan":
            parent[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    text = json.dumps(doc)
    if draw(st.booleans()) and isinstance(doc, dict) and doc:  # the first key once more, another value
        first = json.dumps({next(iter(doc)): draw(JSON_VALUE)})[1:-1]
        text = "{" + first + ", " + text[1:]
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    op = draw(st.sampled_from(["truncate", "flip", "insert", "zero-fill"]))
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if op == "truncate":
        return data[:at]
    if op == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :] if data else data
    if op == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    return data[:at] + b"\0" * min(64, len(data) - at) + data[at + 64 :]


def safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


@st.composite
def lying_safetensors(draw: st.DrawFn, data: bytes) -> bytes:
    """A safetensors file whose header lies: offsets, dtypes, shapes or its own length."""
    header, body = safetensors_parts(data)
    text = draw(mutated_json(header)).encode()
    length = len(text) + draw(st.sampled_from([0, 0, 0, -4, 7, 1 << 40]))
    return struct.pack("<Q", max(0, length)) + text + body


@dataclass
class Reader:
    """One file format: a valid seed file, a strategy corrupting it, and the call that reads it."""

    name: str
    seed: Callable[[Path], Any]  # writes the valid file(s) into a folder; returns what cases need
    cases: Callable[[Any], st.SearchStrategy[Callable[[Path], Any]]]  # writes one corrupted case


def _outcome(read: Callable[[], Any]) -> str:
    try:
        read()
    except NetsculptError:
        return "refused"
    except Exception as exc:
        if os.environ.get("NETSCULPT_FUZZ_TRACE"):
            traceback.print_exc()
        return f"crash: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    return "loaded"


def run_reader(reader: Reader, folder: Path, examples: int) -> Counter:
    """Try ``examples`` corrupted cases of ``reader`` in ``folder``; count the outcomes."""
    folder.mkdir(parents=True, exist_ok=True)
    seed = reader.seed(folder / "seed")
    counts: Counter = Counter()
    case_dir = folder / "case"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(reader.cases(seed))
    def trial(write: Callable[[Path], Any]) -> None:
        import shutil

        shutil.rmtree(case_dir, ignore_errors=True)
        case_dir.mkdir()
        read = write(case_dir)
        counts[_outcome(read)] += 1

    trial()
    return counts


# --- the readers ---------------------------------------------------------------------------------


def _saved_model(folder: Path, palettized: bool = False) -> dict[str, bytes]:
    import netsculpt as ns

    model = ns.create_model("lenet5").eval()
    if palettized:
        from netsculpt.weights import KMeansConfig, kmeans_palettize_

        kmeans_palettize_(model, KMeansConfig(bits=2, n_init=1, max_samples=2_000))
    else:
        model = ns.prune(model, torch.randn(1, 1, 28, 28), ratio=0.5)
    ns.save(model, folder)
    return {name: (folder / name).read_bytes() for name in ("netsculpt.json", "model.safetensors")}


def _load_case(files: dict[str, bytes], replace: dict[str, bytes]) -> Callable[[Path], Any]:
    def write(case: Path) -> Callable[[], Any]:
        import netsculpt as ns

        for name, data in {**files, **replace}.items():
            (case / name).write_bytes(data)
        return lambda: ns.load(case)

    return write


def _spec_cases(files: dict[str, bytes]) -> st.SearchStrategy:
    doc = json.loads(files["netsculpt.json"])
    return mutated_json(doc).map(lambda text: _load_case(files, {"netsculpt.json": text.encode()}))


def _weights_cases(files: dict[str, bytes]) -> st.SearchStrategy:
    data = files["model.safetensors"]
    corrupt = st.one_of(mutated_bytes(data), lying_safetensors(data))
    return corrupt.map(lambda blob: _load_case(files, {"model.safetensors": blob}))


@st.composite
def _packed_metadata(draw: st.DrawFn, data: bytes) -> bytes:
    """A packed file whose palette metadata lies (bit widths, shapes, groups, dtype codes)."""
    header, body = safetensors_parts(data)
    info = json.loads(header["__metadata__"]["netsculpt.packed"])
    header["__metadata__"]["netsculpt.packed"] = draw(mutated_json(info))
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _packed_cases(files: dict[str, bytes]) -> st.SearchStrategy:
    data = files["model.safetensors"]
    corrupt = st.one_of(_packed_metadata(data), lying_safetensors(data), mutated_bytes(data))
    return corrupt.map(lambda blob: _load_case(files, {"model.safetensors": blob}))


def _masked(name: str) -> Callable:  # tests/_fuzz_masked.py: format 4, its digest recomputed on each case
    return lambda arg: getattr(importlib.import_module("tests._fuzz_masked"), name)(arg)


def _onnx_seed(folder: Path) -> bytes:
    from netsculpt.measure import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    return export_onnx(model, torch.randn(1, 1, 8, 8), folder / "m.onnx").read_bytes()


def _onnx_cases(data: bytes) -> st.SearchStrategy:
    def case(blob: bytes) -> Callable[[Path], Any]:
        def write(folder: Path) -> Callable[[], Any]:
            from netsculpt.weights.quantize import OnnxModule

            (folder / "m.onnx").write_bytes(blob)
            return lambda: OnnxModule(folder / "m.onnx")(torch.randn(1, 1, 8, 8))

        return write

    return mutated_bytes(data).map(case)


ATTACK_YAML = [
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    + "model: {name: lenet5}\n",
    "model: !!python/object/apply:os.system ['touch PWNED']\n",
    "model: !!python/name:os.system\n",
    "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "a: &a [*a]\nmodel: {name: lenet5}\n",
    "stages: {prune: {ratio: .nan}}\n",
    "model: {name: {name: lenet5}}\n",
    "\x00\xff" * 8,
]


def _recipe_seed(folder: Path) -> str:
    from netsculpt.pipeline.recipe import default_recipe_path

    return default_recipe_path().read_text()


def _recipe_cases(text: str) -> st.SearchStrategy:
    import yaml

    def case(recipe: str) -> Callable[[Path], Any]:
        def write(folder: Path) -> Callable[[], Any]:
            from netsculpt.pipeline.recipe import load_recipe

            (folder / "r.yaml").write_text(recipe, errors="surrogateescape")
            return lambda: load_recipe(folder / "r.yaml")

        return write

    data = yaml.safe_load(text)

    def to_yaml(text: str) -> str:  # JSON is YAML; re-dump in block style where it parses
        try:
            return yaml.safe_dump(json.loads(text))
        except ValueError:  # NaN, duplicate keys: feed the JSON text itself
            return text

    as_yaml = mutated_json(data).map(to_yaml)
    return st.one_of(st.sampled_from(ATTACK_YAML), as_yaml).map(case)


def _results_seed(folder: Path) -> dict:
    import netsculpt as ns

    model = ns.create_model("lenet5")
    metrics = ns.measure(model, torch.randn(1, 1, 28, 28), latency=False).to_dict()
    return {
        "version": 1,
        "before": {**metrics, "accuracy": 0.98},
        "after": {**metrics, "accuracy": 0.97},
        "calibration": {"matmul_gflops": 80.0, "python_loop_ms": 20.0},
        "wall_seconds": 10.0,
    }


def _results_cases(doc: dict) -> st.SearchStrategy:
    def case(text: str) -> Callable[[Path], Any]:
        def write(folder: Path) -> Callable[[], Any]:
            from netsculpt.report import write_report

            (folder / "results.json").write_text(text)
            return lambda: write_report(folder)

        return write

    newer = json.dumps({**doc, "version": 99})
    return st.one_of(st.just(newer), mutated_json(doc)).map(case)


READERS: dict[str, Reader] = {
    r.name: r
    for r in [
        Reader("netsculpt.json", _saved_model, _spec_cases),
        Reader("model.safetensors", _saved_model, _weights_cases),
        Reader("packed palettes", lambda f: _saved_model(f, palettized=True), _packed_cases),
        Reader("packed masked context", _masked("masked_seed"), _masked("masked_cases")),
        Reader("ONNX", _onnx_seed, _onnx_cases),
        Reader("recipe YAML", _recipe_seed, _recipe_cases),
        Reader("results.json", _results_seed, _results_cases),
        Reader("IDX (MNIST)", _idx_seed, _idx_cases),
        Reader("CIFAR pickle", _cifar_seed, _cifar_cases),
    ]
}
