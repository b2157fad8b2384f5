"""Where candidates are scored: in this process, in local worker processes, or on a Ray cluster.

Every executor receives the :class:`~netsculpt.search.evaluator.EvalTask` once (``start``) and then
maps jobs to evaluations in order. Scoring is deterministic (fixed batches, one thread per worker), so
the executor changes how long a search takes, never its result.

A task may bring its own evaluator (a ``make_evaluator()`` method; HAQ's bit-vector scoring does): the
executors then run that instead of the pruning evaluator, so every search shares one way to scale out.

Local workers are *spawned* processes: forking a process that has already run PyTorch's thread pools
can deadlock, and spawn gives every worker a clean interpreter. Each pins torch to one thread, so N
workers use N cores.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from netsculpt.errors import ConfigError
from netsculpt.search.evaluator import CandidateEvaluator, EvalTask, Evaluation, Job


def build_evaluator(task: Any, graph: Any = None) -> Any:
    """The task's own evaluator if it has one, else the pruning :class:`CandidateEvaluator`."""
    make = getattr(task, "make_evaluator", None)
    return make() if make is not None else CandidateEvaluator(task, graph)


class Executor(Protocol):
    """Scores jobs in order. ``start`` ships the task; ``close`` releases workers."""

    workers: int

    def start(self, task: EvalTask, graph: Any = None) -> None: ...

    def map(self, jobs: Sequence[Job]) -> list[Evaluation]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Scores in this process (the graph the caller already traced is reused)."""

    workers = 1

    def __init__(self) -> None:
        self.evaluator: Any = None

    def start(self, task: EvalTask, graph: Any = None) -> None:
        self.evaluator = build_evaluator(task, graph)

    def map(self, jobs: Sequence[Job]) -> list[Evaluation]:
        assert self.evaluator is not None, "call start(task) first"
        return [self.evaluator(job) for job in jobs]

    def close(self) -> None:
        self.evaluator = None


_WORKER: dict[str, Any] = {}


def _init_worker(task: EvalTask) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("NETSCULPT_QUIET", "1")
    _WORKER["evaluator"] = build_evaluator(task)


def _run_job(job: Job) -> Evaluation:
    return _WORKER["evaluator"](job)


class ProcessExecutor:
    """``workers`` spawned local processes, each holding one evaluator."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.pool: Any = None

    def start(self, task: EvalTask, graph: Any = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(task,),
        )

    def map(self, jobs: Sequence[Job]) -> list[Evaluation]:
        assert self.pool is not None, "call start(task) first"
        return list(self.pool.map(_run_job, jobs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class RayExecutor:
    """One Ray actor per worker, each holding an evaluator; the task is put in the object store once.

    ``address`` connects to a running cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) unless
    Ray is already initialised in this process (then that instance is used and left running). With no
    address and no running Ray, a local instance is started and shut down on ``close``. The cluster's
    workers must be able to import netsculpt (and the model's code).
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address, self.requested, self.workers = address, workers, workers or 1
        self.actors: list[Any] = []
        self.started_ray = False

    def start(self, task: EvalTask, graph: Any = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the Ray executor needs ray: pip install 'ray[default]' (or drop --ray-address)"
            ) from None
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.requested, runtime_env=env, **kwargs)
                self.started_ray = True
        cpus = int(ray.available_resources().get("CPU", 1))
        self.workers = max(1, min(self.requested or cpus, cpus))
        actor = ray.remote(num_cpus=1)(_RayWorker)
        ref = ray.put(task)
        self.actors = [actor.remote(ref) for _ in range(self.workers)]

    def map(self, jobs: Sequence[Job]) -> list[Evaluation]:
        from ray.util import ActorPool

        assert self.actors, "call start(task) first"
        return list(ActorPool(self.actors).map(lambda actor, job: actor.run.remote(job), list(jobs)))

    def close(self) -> None:
        if not self.actors:
            return
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False


class _RayWorker:
    """A Ray actor's body, made remote in ``start`` (so importing this module never needs ray)."""

    def __init__(self, task: EvalTask) -> None:
        import torch

        torch.set_num_threads(1)
        self.evaluator = build_evaluator(task)

    def run(self, job: Job) -> Evaluation:
        return self.evaluator(job)


def make_executor(workers: int = 0, ray_address: str | None = None) -> Executor:
    """``ray_address`` -> Ray; ``workers`` >= 1 -> that many local processes; 0 -> this process."""
    if ray_address:
        return RayExecutor(ray_address, workers or None)
    if workers >= 1:
        return ProcessExecutor(workers)
    return SerialExecutor()
