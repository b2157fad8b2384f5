"""Kill `netsculpt compress` with SIGKILL at random points and check that every restart ends identically.

A reference run lists the fault points it passes (:mod:`netsculpt.faults`: stage boundaries, every
training batch and epoch checkpoint, every file between its write and its rename). Each trial then runs
the same recipe into a fresh folder, kills it at a point drawn at random (the categories taken in turn,
so the thousands of batches do not crowd out the few renames), checks that no file in the folder is
half-written, reruns the command (which may itself be killed again, ``kills_per_trial``), and finally
compares the finished folder with the reference: every number of ``results.json`` that does not measure
time, and the bytes of every stage's model.

Runs are real processes forked from a server that imported netsculpt once (multiprocessing's
forkserver), so a trial costs its work rather than torch's import time. ``run_kill_points(n)`` is called
by the test suite (a few points) and by ``benchmarks/robustness_kill.py`` (many).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Small enough for seconds per run, big enough that every fault point occurs: several batches per
#: epoch, two epochs (so a resume continues from an epoch checkpoint), a prune, a fine-tune, the report.
RECIPE = """
name: kill_points
seed: 0
model: {name: lenet5}
data: {name: mnist5k, limit: 256, batch_size: 64}
baseline: {train: {preset: default, epochs: 2}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}, calib_batches: 2}
  - finetune: {epochs: 2}
outputs: {latency_runs: 2, report: true}
"""

#: Every other stage kind that trains, calibrates or writes its own files: distillation from the
#: baseline, DKM clustering (fine-tunes), int8 quantization (ONNX files), a width search (its own state).
RECIPE_WIDE = """
name: kill_points_wide
seed: 0
model: {name: lenet5}
data: {name: mnist5k, limit: 256, batch_size: 64}
baseline: {train: {preset: default, epochs: 2}}
stages:
  - search: {method: greedy, target: {macs: 0.5}, val_size: 64}
  - distill: {epochs: 2, temperature: 4.0, alpha: 0.9}
  - cluster: {method: dkm, bits: 4, epochs: 1}
  - quantize: {calib_batches: 2}
outputs: {latency_runs: 2, report: true}
"""

#: Where a kill is drawn from, in turn: the rare places first, so few kills already cover them.
CATEGORIES = ("stage", "write", "wrote", "train:epoch", "train:batch")

#: results.json keys that measure time or the machine, not the computation; and a search's count of
#: candidates scored by this process (``evaluated``: a resumed search reads the rest from its state file).
TIMING_KEYS = frozenset(
    {"seconds", "latency_ms", "latency", "calibration", "wall_seconds", "threads", "evaluated", "guard"}
)

#: Imported once by the fork server (torch.optim pulls in torch._dynamo lazily: 4 s per process); the
#: SIGKILL resume tests (tests/train/_sigkill.py) fork their workers from the same server.
PRELOAD = [
    "torch._dynamo",
    "matplotlib.backends.backend_agg",
    "netsculpt.cli",
    "netsculpt.pipeline",
    "netsculpt.io",
    "netsculpt.train",
    "netsculpt.measure",
    "netsculpt.prune",
    "netsculpt.data",
    "netsculpt.report",
]


def _child(argv: list[str], fault: str | None, trace: str | None, log: str) -> None:
    """Body of one run: a fresh process with netsculpt already imported."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["NETSCULPT_QUIET"] = "1"
    from netsculpt import faults
    from netsculpt.cli import main

    faults.configure(fault, trace)
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no atexit work inherited from the fork server


class Runner:
    """Starts `netsculpt compress` runs as processes forked from a preloaded server."""

    def __init__(self, workdir: Path, recipe: str = RECIPE) -> None:
        self.workdir = workdir
        self.recipe_path = workdir / "recipe.yaml"
        self.recipe_path.write_text(recipe)
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.runs = 0

    def start(self, run_dir: Path, fault: str | None = None, trace: Path | None = None) -> Any:
        self.runs += 1
        argv = ["--quiet", "compress", str(self.recipe_path), "--out", str(run_dir)]
        log = self.workdir / f"run{self.runs:03d}.log"
        proc = self.ctx.Process(target=_child, args=(argv, fault, str(trace) if trace else None, str(log)))
        proc.start()
        proc.log = log  # type: ignore[attr-defined]
        return proc

    def run(self, run_dir: Path, fault: str | None = None, trace: Path | None = None) -> int:
        """Run to the end (or the fault); the exit code, -9 when killed."""
        proc = self.start(run_dir, fault, trace)
        proc.join(600)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise RuntimeError(f"run into {run_dir} did not finish in 600 s; see {proc.log}")
        return proc.exitcode

    def log_tail(self, proc_or_index: int) -> str:
        log = self.workdir / f"run{proc_or_index:03d}.log"
        return log.read_text()[-2000:] if log.is_file() else ""


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def fingerprint(run_dir: Path) -> dict[str, Any]:
    """What must not depend on where a run was interrupted: results without timings, model bytes."""
    results = json.loads((run_dir / "results.json").read_text())
    models = {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(run_dir.glob("*/model/*")) + sorted(run_dir.glob("*/model.int8.onnx"))
    }
    keep = {k: results[k] for k in ("stages", "before", "after", "points", "recipe_sha256")}
    return {"results": _strip(keep), "models": models}


def half_written(run_dir: Path) -> list[str]:
    """Files under their final name that do not read back whole (temporary ``.*.tmp`` files excluded:
    nothing reads them). An empty list is the invariant a kill must never break."""
    from safetensors.torch import load_file

    from netsculpt.fileio import safe_torch_load

    bad = []
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or (path.name.startswith(".") and path.name.endswith(".tmp")):
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                load_file(str(path))
            elif path.suffix == ".pt":
                safe_torch_load(path)
            elif path.name == "DONE" and path.read_text() != "ok\n":
                raise ValueError("marker without its text")
            elif path.suffix == ".html" and not path.read_text().rstrip().endswith("</html>"):
                raise ValueError("report cut short")
        except Exception as exc:  # any failure to read back is the finding
            bad.append(f"{path.relative_to(run_dir)}: {type(exc).__name__}: {str(exc)[:120]}")
    return bad


def _category(name: str) -> str:
    return next(c for c in CATEGORIES if name.startswith(c))


def choose(points: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` faults ``NAME@K`` drawn from a run's trace, cycling through the categories."""
    occurrences: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    counts: dict[str, int] = {}
    for name in points:
        counts[name] = counts.get(name, 0) + 1
        occurrences[_category(name)].append(f"{name}@{counts[name]}")
    present = [c for c in CATEGORIES if occurrences[c]]
    return [rng.choice(occurrences[present[i % len(present)]]) for i in range(n)]


def _trace(runner: Runner, run_dir: Path) -> list[str]:
    trace = runner.workdir / "reference.trace"
    code = runner.run(run_dir, trace=trace)
    if code != 0:
        raise RuntimeError(f"the reference run failed ({code}): {runner.log_tail(runner.runs)}")
    return trace.read_text().split()


def _remaining(points: list[str], fault: str) -> int:
    """About how many points a rerun after ``fault`` passes: those from the start of the stage it hit."""
    name, _, at = fault.rpartition("@")
    where = [i for i, p in enumerate(points) if p == name][int(at) - 1]
    starts = [i for i, p in enumerate(points[: where + 1]) if p.startswith("stage:") and p.endswith(":start")]
    return len(points) - (starts[-1] if starts else 0)


def run_kill_points(
    n: int,
    *,
    seed: int = 0,
    kills_per_trial: int = 2,
    recipe: str = RECIPE,
    workdir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Kill ``n`` times at random points; how many kills happened and how many runs resumed identically.

    A trial kills a run at a point drawn by category, then kills each rerun (up to ``kills_per_trial``
    kills) at a point drawn uniformly from what is left of the run, then lets the last rerun finish.
    Returns ``{"kill_points": n, "killed": kills that happened (a rerun may finish before its point),
    "trials", "identical": trials that ended as the reference did, "half_written": files found broken
    after a kill, "mismatches", "by_category", "runs": processes started, "seconds"}``.
    """
    started = time.perf_counter()
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="netsculpt-kill-")) if own else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        runner = Runner(root, recipe)
        reference_dir = root / "reference"
        points = _trace(runner, reference_dir)
        reference = fingerprint(reference_dir)
        if runner.run(reference_dir) != 0:  # a rerun of a finished folder changes nothing
            raise RuntimeError(f"rerunning the finished reference failed: {runner.log_tail(runner.runs)}")
        if fingerprint(reference_dir) != reference:
            raise RuntimeError("rerunning a finished run changed its results")
        rng = random.Random(seed)
        firsts = iter(choose(points, n, rng))
        report: dict[str, Any] = {"kill_points": 0, "killed": 0, "trials": 0, "identical": 0,
                                  "half_written": [], "mismatches": [], "by_category": {}}  # fmt: skip
        while report["kill_points"] < n:
            trial_dir = root / f"trial{report['trials']:03d}"
            report["trials"] += 1
            fault = next(firsts)
            left, code = _remaining(points, fault), -9
            for kill in range(kills_per_trial):
                if report["kill_points"] == n:
                    break
                if kill > 0:
                    fault = f"*@{rng.randint(1, left)}"
                report["kill_points"] += 1
                code = runner.run(trial_dir, fault=fault)
                if code == 0:  # the rerun finished before reaching its point
                    break
                if code != -9:
                    raise RuntimeError(f"run with {fault} exited {code}: {runner.log_tail(runner.runs)}")
                report["killed"] += 1
                category = "any" if fault.startswith("*") else _category(fault)
                report["by_category"][category] = report["by_category"].get(category, 0) + 1
                report["half_written"] += [f"after {fault}: {b}" for b in half_written(trial_dir)]
            if code != 0:  # killed last: the final rerun
                code = runner.run(trial_dir)
            if code != 0:
                report["mismatches"].append(f"{trial_dir.name}: resume exited {code}")
                continue
            got = fingerprint(trial_dir)
            if got == reference:
                report["identical"] += 1
                shutil.rmtree(trial_dir)
            else:  # kept for a look when the caller chose the workdir
                report["mismatches"].append(f"{trial_dir.name}: {_first_difference(reference, got)}")
        report["runs"] = runner.runs
        report["reference_points"] = len(points)
        report["seconds"] = time.perf_counter() - started
        return report
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where or '.'}: {str(a)[:80]} != {str(b)[:80]}"


def summarize(report: dict[str, Any]) -> str:
    """One line a benchmark prints."""
    return (
        f"kill points tried {report['kill_points']} (killed {report['killed']}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["by_category"].items()))
        + f"); trials {report['trials']}, resumed identically {report['identical']}; "
        f"half-written files seen {len(report['half_written'])}; {report['runs']} runs in "
        f"{report['seconds']:.0f} s"
    )
