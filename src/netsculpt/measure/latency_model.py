"""Predict latency from a lookup table of per-layer latencies, measured once per layer shape.

Timing every candidate of a width search end to end costs dozens of timed runs each, and the timings are
unreliable while search workers load the CPU. A pruned network differs from its original only in channel
counts, so a table keyed by layer shape (type, channels, kernel, stride, groups, input size) predicts any
pruned variant once its layers are in the table; a missing shape is measured on the spot, in isolation,
on one thread, after a warm-up, as a median, and kept.

Layers are timed as *units*: a conv or linear layer together with the BatchNorm and activation modules
that consume its output, because ONNX Runtime runs them as one kernel (BN folded, activation fused) and
timing them apart would count work it never does. Data-moving ops between leaf modules (residual adds,
squeeze-excite multiplies, concatenations, channel shuffles) shrink with the channels and are priced by
the tensors they touch (:mod:`netsculpt.measure.latency_glue`); the rest (Python glue, per-call overheads:
pruning changes no unit count) is a fixed offset, the base model's end-to-end latency minus its table sum.
ONNX Runtime units run with bound inputs and outputs (no per-call copies), minus the cost of an empty
call timed alongside, as the median of several fresh sessions. Measured accuracy and limits:
docs/search.md.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.fileio import write_json
from netsculpt.measure._inputs import ExampleInputs, as_tuple
from netsculpt.measure.latency import check_counts
from netsculpt.measure.latency_glue import GluePricing
from netsculpt.measure.latency_layers import LayerCall, describe_layer, record_calls, shape_text
from netsculpt.modes import module_modes, restore_modes, set_training

__all__ = ["CLOCKS", "LatencyModel", "LayerCall", "describe_layer", "median_time_ms", "record_calls"]

CLOCKS = ("wall", "thread")

TABLE_VERSION = 1
ONNX_SESSIONS = 3  # ONNX Runtime timings are the median over this many fresh sessions


def median_time_ms(call: Callable[[], object], runs: int, warmup: int, clock: str = "wall") -> float:
    """Median milliseconds of ``call()`` after ``warmup`` untimed calls, by wall clock or by the calling
    thread's CPU time (which a busy machine's preemptions do not inflate)."""
    now = time.perf_counter_ns if clock == "wall" else time.thread_time_ns
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = now()
        call()
        times.append((now() - start) / 1e6)
    return statistics.median(times)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, restoring the caller's setting (also used by
    :mod:`netsculpt.runtimes`)."""
    if n < 1:
        raise ConfigError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LatencyModel(GluePricing):
    """Predicted latency (ms) of ``model`` and of its pruned variants on ``example_inputs``' shapes.

    ``runtime`` (or its alias ``backend``) is any name of the runtime registry (:mod:`netsculpt.runtimes`):
    "torch" (eager), "compile" (``torch.compile``, inductor: every new unit shape is compiled once, a few
    seconds each, then kept in the table), "onnxruntime" (each unit exported and timed in a CPU session)
    or "openvino". ``clock`` is "wall" or "thread" (CPU time of the calling thread: on a shared machine it
    is not inflated by preemption; with ``threads > 1`` the work runs on other threads too, so the wall
    clock is used). The base model is measured end to end once, here, to fix the offset;
    :meth:`calibrate` can refit a scale as well. Pass ``table`` and ``base_ms`` (as :meth:`load` does)
    to reuse earlier measurements.

    Prediction: ``scale * sum(table[unit]) + offset_ms``.
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: ExampleInputs,
        *,
        runtime: str = "torch",
        backend: str | None = None,
        clock: str = "thread",
        runs: int = 20,
        warmup: int = 5,
        threads: int = 1,
        table: dict[str, float] | None = None,
        base_ms: float | None = None,
        glue: bool = True,
    ) -> None:
        from netsculpt.runtimes import get_runtime

        impl = get_runtime(backend or runtime)  # unknown names list the registered ones
        impl.check()  # not installed: say so (and how to install) before measuring anything
        runtime = impl.name
        if clock not in CLOCKS:
            raise ConfigError(f"unknown clock {clock!r}; choose one of {', '.join(CLOCKS)}")
        check_counts(runs, warmup)
        if threads > 1:
            clock = "wall"  # other threads' work is invisible to the calling thread's CPU clock
        self.runtime, self.clock, self.runs, self.warmup, self.threads = runtime, clock, runs, warmup, threads
        self.inputs = as_tuple(example_inputs)
        self.modules = dict(model.named_modules())
        self.calls, self.units = record_calls(model, self.inputs)
        self.leaves = {n for n, m in model.named_modules() if not list(m.children())}
        self.glue, self._glue_ops = glue, (None, [])  # (graph, its priced glue ops): the last graph seen
        self.table: dict[str, float] = dict(table or {})
        self.measured = 0  # table entries measured by this object (not loaded)
        # The base measurement anchors every prediction's offset: it gets three times the samples.
        self.base_ms = float(base_ms) if base_ms is not None else self.measure_model(model, repeats=3)
        self.base_sum = self._sum([(c.in_shape, c.out_shape) for c in self.calls])
        self.base_sum += self.glue_sum(self._trace(model), {})
        self.scale, self.offset_ms = anchor_to_base(self.base_ms, self.base_sum)

    # -- measurement ---------------------------------------------------------------------------------
    def measure_model(self, model: nn.Module, runs: int | None = None, repeats: int = 1) -> float:
        """End-to-end median latency of ``model`` with this object's runtime, clock and thread count
        (``repeats`` times the runs; for ONNX Runtime, times the sessions)."""
        runs = runs or self.runs
        with torch_threads(self.threads), torch.no_grad():
            if self.runtime == "torch":
                modes = module_modes(model)
                set_training(model, False)
                try:
                    return median_time_ms(
                        lambda: model(*self.inputs), runs * repeats, self.warmup, self.clock
                    )
                finally:
                    restore_modes(modes)
            if self.runtime == "onnxruntime":
                return self._onnx_ms(model, self.inputs, runs, ONNX_SESSIONS * repeats)
            return self._registry_ms(model, self.inputs, runs * repeats)

    @property
    def backend(self) -> str:
        """The runtime's registry name (``runtime`` under the name some callers use)."""
        return self.runtime

    def _registry_ms(
        self, model: nn.Module, inputs: tuple[torch.Tensor, ...], runs: int, subtract_call: bool = False
    ) -> float:
        """Median ms of a registry runtime's prepared call (OpenVINO, torch.compile); with ``subtract_call``
        the cost of an empty call on the same runtime, timed alongside, is taken off (as for ONNX Runtime)."""
        from netsculpt.runtimes import get_runtime

        runtime = get_runtime(self.runtime)
        prepared = runtime.prepare(model, inputs, self.threads)
        try:
            ms = median_time_ms(prepared.call, runs, self.warmup, self.clock)
        finally:
            prepared.close()
        if subtract_call:
            empty = runtime.prepare(nn.ReLU(), (torch.zeros(1, 1),), self.threads)
            try:
                ms -= median_time_ms(empty.call, runs, self.warmup, self.clock)
            finally:
                empty.close()
        return max(ms, 0.0)

    def _onnx_ms(
        self,
        model: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        runs: int,
        sessions: int = 1,
        subtract_call: bool = False,
    ) -> float:
        """Median over ``sessions`` fresh sessions of each one's median: a session's speed depends on
        where its buffers land (we saw one file run 0.83 or 1.08 ms from session to session)."""
        from netsculpt.measure.onnx_runtime import _feeds, _session, export_onnx

        def bound(path: Path, inputs: tuple[torch.Tensor, ...]) -> Callable[[], object]:
            session = _session(path)
            # Bind inputs and outputs once: per-call copies in and out of numpy scale with a unit's
            # activations and would be counted for every unit, though a whole network pays them once.
            binding = session.io_binding()
            for name, value in _feeds(session, inputs).items():
                binding.bind_cpu_input(name, value)
            for out in session.get_outputs():
                binding.bind_output(out.name, "cpu")
            return functools.partial(session.run_with_iobinding, binding)

        times = []
        with tempfile.TemporaryDirectory(prefix="netsculpt-lut-") as tmp:
            path = export_onnx(model, inputs, Path(tmp) / "m.onnx")
            tiny = (torch.zeros(1, 1),)
            empty = export_onnx(nn.ReLU(), tiny, Path(tmp) / "empty.onnx") if subtract_call else None
            for _ in range(sessions):
                ms = median_time_ms(bound(path, inputs), runs, self.warmup, self.clock)
                if empty is not None:  # the fixed cost of one run() call, timed alongside
                    ms -= median_time_ms(bound(empty, tiny), runs, self.warmup, self.clock)
                times.append(max(ms, 0.0))  # a layer cheaper than the call's jitter costs nothing
        return statistics.median(times)

    def calibrate(self, table_sums: list[float], measured_ms: list[float]) -> None:
        """Fit ``scale`` and ``offset_ms`` by least squares to end-to-end measurements (2 or more points):
        isolated layers run with warmer caches than inside a network, which a scale absorbs."""
        if len(table_sums) < 2 or len(table_sums) != len(measured_ms):
            raise ConfigError("calibrate needs two or more (table sum, measured ms) pairs of equal count")
        n = len(table_sums)
        mx, my = sum(table_sums) / n, sum(measured_ms) / n
        var = sum((x - mx) ** 2 for x in table_sums)
        self.scale = sum((x - mx) * (y - my) for x, y in zip(table_sums, measured_ms)) / var if var else 1.0
        self.offset_ms = my - self.scale * mx

    # -- prediction ----------------------------------------------------------------------------------
    def table_sum_model(self, model: nn.Module) -> float:
        """Sum of table latencies over ``model``'s units (this architecture, some channels removed)."""
        calls, _ = record_calls(model, self.inputs)
        if [(c.name, c.index) for c in calls] != [(c.name, c.index) for c in self.calls]:
            raise ConfigError(
                "this model's layers differ from the latency model's (names or call order); "
                "build a LatencyModel for it"
            )
        units = self._sum([(c.in_shape, c.out_shape) for c in calls])
        return units + (self.glue_sum(self._trace(model), {}) if self.glue else 0.0)

    def predict_model(self, model: nn.Module) -> float:
        """Latency of ``model``: this architecture with some channels removed (module names unchanged)."""
        return self.scale * self.table_sum_model(model) + self.offset_ms

    def table_sum_keep(self, graph: Any, keep: dict[str, list[int]]) -> float:
        return self._sum(self.shapes_after(graph, keep)) + self.glue_sum(graph, keep)

    def predict_keep(self, graph: Any, keep: dict[str, list[int]]) -> float:
        """Latency after keeping ``keep`` (group id -> channels) of the traced ``graph`` of this model,
        without building the pruned model: new layer shapes come from the graph."""
        return self.scale * self.table_sum_keep(graph, keep) + self.offset_ms

    def fraction(self, graph: Any, keep: dict[str, list[int]]) -> float:
        """Predicted latency after ``keep`` as a fraction of the base model's predicted latency."""
        return self.predict_keep(graph, keep) / (self.scale * self.base_sum + self.offset_ms)

    def shapes_after(self, graph: Any, keep: dict[str, list[int]]) -> list[tuple[tuple, tuple]]:
        """(input shape, output shape) of every recorded call once ``keep`` is applied."""
        removed = graph.removed_components(keep)
        io, calls_out = graph.builder.module_io, graph.builder.module_calls
        values = graph.builder.values
        out = []
        for c in self.calls:
            new_out = c.out_shape
            outs = calls_out.get(c.name, [])
            if c.index < len(outs) and outs[c.index]:
                vid = outs[c.index][0]
                new_out = _apply(c.out_shape, values[vid].shape, graph.new_shape(vid, removed))
            new_in = c.in_shape
            if c.index == 0 and io.get(c.name) and io[c.name][0]:
                vid = io[c.name][0][0]
                new_in = _apply(c.in_shape, values[vid].shape, graph.new_shape(vid, removed))
            elif c.in_shape == c.out_shape:
                new_in = new_out
            out.append((new_in, new_out))
        return out

    def _sum(self, shapes: list[tuple[tuple, tuple]]) -> float:
        total = 0.0
        for unit in self.units:
            modules = [self.modules[self.calls[i].name] for i in unit]
            total += self.unit_ms(modules, [shapes[i] for i in unit], [self.calls[i] for i in unit])
        return total

    # -- the table -----------------------------------------------------------------------------------
    def unit_ms(
        self, modules: list[nn.Module], shapes: list[tuple[tuple, tuple]], base: list[LayerCall]
    ) -> float:
        """The table's latency for one unit at these shapes, measuring it first if it is missing."""
        described = [describe_layer(m, i, o) for m, (i, o) in zip(modules, shapes)]
        if any(build is None for _, build in described):
            # A layer it cannot rebuild (units of such layers are single): time the original, scale it
            # by activation size.
            (module,), ((i, o),), (call,) = modules, shapes, base
            ms = self._measure_as_is(module, call)
            return ms * (math.prod(i) + math.prod(o)) / (math.prod(call.in_shape) + math.prod(call.out_shape))
        key = "+".join(k for k, _ in described) + "@" + shape_text(shapes[0][0])
        if key not in self.table:
            self.table[key] = self._time([build() for _, build in described], shapes[0][0])  # type: ignore[misc]
            self.measured += 1
        return self.table[key]

    def _measure_as_is(self, module: nn.Module, call: LayerCall) -> float:
        key = f"{type(module).__name__}#{call.name}@{shape_text(call.in_shape)}"
        if key not in self.table:
            self.table[key] = self._time([copy.deepcopy(module)], call.in_shape, call.in_dtype)
            self.measured += 1
        return self.table[key]

    def _time(
        self, layers: list[nn.Module], in_shape: tuple[int, ...], dtype: torch.dtype = torch.float32
    ) -> float:
        unit = nn.Sequential(*layers).eval()
        if dtype.is_floating_point or dtype.is_complex:
            x = torch.randn(in_shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
        else:  # integer ids (an nn.Embedding's input): 0 is a valid index of any table, and a lookup's
            x = torch.zeros(in_shape, dtype=dtype)  # time does not depend on which rows it reads
        if self.runtime == "onnxruntime":
            return self._onnx_ms(unit, (x,), self.runs, ONNX_SESSIONS, subtract_call=True)
        if self.runtime != "torch":
            with torch_threads(self.threads), torch.no_grad():
                return self._registry_ms(unit, (x,), self.runs, subtract_call=True)
        mods = list(unit)

        def run() -> None:  # the layers themselves, without nn.Sequential's own call overhead
            y = x
            for m in mods:
                y = m(y)

        with torch_threads(self.threads), torch.no_grad():
            return median_time_ms(run, self.runs, self.warmup, self.clock)

    # -- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": TABLE_VERSION,
            "runtime": self.runtime,
            "clock": self.clock,
            "runs": self.runs,
            "warmup": self.warmup,
            "threads": self.threads,
            "input_shapes": [list(x.shape) for x in self.inputs],
            "base_ms": self.base_ms,
            "scale": self.scale,
            "offset_ms": self.offset_ms,
            "glue": self.glue,
            "table": dict(sorted(self.table.items())),
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically): reload it with :meth:`load` to skip re-measuring."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, model: nn.Module, example_inputs: ExampleInputs) -> LatencyModel:
        """A latency model for ``model`` reusing a saved table (and its base measurement)."""
        from netsculpt.jsoncheck import read_json_file

        data = read_json_file(path, error=ConfigError)  # strict: no NaN, duplicate keys or oversized files
        if not isinstance(data, dict) or data.get("version") != TABLE_VERSION or "table" not in data:
            raise ConfigError(f"{str(path)!r} is not a netsculpt latency table (version {TABLE_VERSION})")
        shapes = [list(x.shape) for x in as_tuple(example_inputs)]
        if data.get("input_shapes") != shapes:
            raise ConfigError(
                f"latency table {str(path)!r} was measured for inputs {data.get('input_shapes')}, "
                f"not {shapes}; measure a new table for these inputs"
            )
        out = cls(
            model,
            example_inputs,
            runtime=data["runtime"],
            clock=data.get("clock", "wall"),
            runs=data["runs"],
            warmup=data["warmup"],
            threads=data["threads"],
            table={str(k): float(v) for k, v in data["table"].items()},
            base_ms=float(data["base_ms"]),
            glue=bool(data.get("glue", False)),  # older tables counted the glue in the offset
        )
        out.scale, out.offset_ms = float(data.get("scale", 1.0)), float(data["offset_ms"])
        return out


def anchor_to_base(base_ms: float, base_sum: float) -> tuple[float, float]:
    """(scale, offset) that make the base model's prediction equal its measured latency.

    The offset stands for the fixed cost of a run beyond its layers, so it is never negative: when the
    layers timed one by one add up to more than the whole network (a loaded machine, or a runtime whose
    per-layer sessions cost more than fused execution), the excess is taken as proportional instead and
    absorbed by a scale, so a pruned model is never predicted to take negative time."""
    if base_sum > base_ms and base_sum > 0:
        return base_ms / base_sum, 0.0
    return 1.0, base_ms - base_sum


def _apply(ours: tuple[int, ...], traced: tuple[int, ...], pruned: tuple[int, ...]) -> tuple[int, ...]:
    """Carry the graph's shrunk dims over to our recorded shape (the graph may be traced at another batch)."""
    if len(ours) != len(traced):
        return ours
    return tuple(p if t != p else o for o, t, p in zip(ours, traced, pruned))
