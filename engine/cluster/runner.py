"""Run a batch's per-file jobs on Ray worker actors.

Each worker is an actor: it builds the expert registry (and so loads each model) once, then
restores file after file with :meth:`Batch.run_item`, the function a local run calls,
reading the input and writing the output itself. Only paths, options and the small per-file
results travel through Ray, never pixels. The inputs and OUTDIR must therefore be at the same
path on every node (one machine, or a shared file system).

A worker that dies (killed, out of memory, node lost) is replaced and the file it was
restoring is handed out again; files queued behind it are handed out again without counting
against them. A file during which workers died ``max_attempts`` times fails alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..errors import RestoraError, one_line
from ..kinds import GENERALIST, UPSCALE
from ..pipeline.batch import Batch
from ..pipeline.job import RestoreOptions, RestoreResult
from ..progress import CancelToken
from .batch import ClusterJob, InOrder, Throughput

log = logging.getLogger(__name__)

#: Object store for a cluster started with ``--cluster local``: only paths and results pass
#: through it, so Ray's default (30 % of RAM) would only reserve memory for nothing.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 ** 2


class ClusterUnavailable(RestoraError):
    """Ray is not installed, the cluster cannot be reached, or it cannot host a worker."""


@dataclass(frozen=True)
class ClusterSettings:
    """``address``: ``"local"`` (start Ray on this machine, stopped at the end), ``"auto"``
    or a Ray address (``"ray://head:10001"``, ``"head:6379"``). ``workers``: actors to start
    (``None``: one per GPU when the plan has a neural stage and the cluster has GPUs, else one
    per ``cpus_per_worker`` CPUs of the cluster; never more than there are files).
    ``device``: the ``--device`` preference (``auto`` takes a GPU when Ray offers one).
    ``max_attempts``: worker deaths a single file may cause before it fails.
    ``in_flight``: files queued on each worker so that it never waits for the driver.
    ``start_timeout``: seconds to wait for the first worker before giving up (s > 0)."""

    address: str = "local"
    workers: Optional[int] = None
    cpus_per_worker: float = 1.0
    device: str = "auto"
    max_attempts: int = 3
    in_flight: int = 2
    start_timeout: float = 600.0


class RestoreWorker:
    """The actor body (wrapped with ``ray.remote`` at run time so that importing this module
    needs no Ray). ``threads``: CPU threads its networks may use."""

    def __init__(self, items: list, outdir: str, options: RestoreOptions, device_preference: str, threads: int,
                 cwd: str) -> None:
        import ray

        from ..experts.default import build_registry
        from ..pipeline.job import Restorer

        if Path(cwd).is_dir():  # relative inputs and OUTDIR mean what they mean to the driver
            os.chdir(cwd)
        gpu_ids = ray.get_gpu_ids()
        device = _worker_device(device_preference, bool(gpu_ids))
        _limit_threads(threads)
        registry = build_registry(device=device)
        for expert in registry.all():
            if hasattr(expert, "threads") and expert.threads is None:
                expert.threads = threads
        self.restorer = Restorer(registry, device=device)
        self.batch = Batch(items, Path(outdir), options)
        self._retry_batch: Optional[Batch] = None
        self.description = {"host": socket.gethostname(), "pid": os.getpid(), "device": device,
                            "gpus": [str(g) for g in gpu_ids], "experts": available_experts(registry)}

    def describe(self) -> dict:
        return self.description

    def sees(self, folder: str) -> bool:
        return Path(folder).is_dir()

    def restore(self, index: int, target: str, replace_own: bool) -> RestoreResult:
        """Restore the batch's item ``index`` (0-based) as a local run does. ``replace_own``: a
        worker died during an earlier attempt, and any output (``target``, the path the driver
        expects) or temporary file already there is that attempt's, so it is replaced rather
        than reported as existing or skipped."""
        from ..imageio.atomic import leftover_temp_files

        batch = self.batch
        if replace_own:
            for temp in leftover_temp_files(Path(target)):
                temp.unlink(missing_ok=True)
            if self._retry_batch is None:
                options = replace(batch.options, overwrite=True, skip_existing=False)
                self._retry_batch = Batch(batch.items, batch.outdir, options)
            batch = self._retry_batch
        return batch.run_item(self.restorer, batch.items[index])


def available_experts(registry) -> list[str]:
    """The ids of the experts that can run (a worker missing a model plans differently)."""
    return sorted(e.info.id for e in registry.all() if e.is_available())


def _worker_device(preference: str, has_gpu: bool) -> str:
    """The device a worker uses: a GPU only when Ray assigned it one (``auto``/``cuda``)."""
    if preference in ("auto", "cuda") and has_gpu:
        from ..runtime.device import choose_device

        return choose_device("cuda")
    if preference == "mps":
        from ..runtime.device import choose_device

        return choose_device("mps")
    return "cpu"


def _limit_threads(threads: int) -> None:
    """Keep the worker's libraries to the CPUs Ray gave it (onnxruntime otherwise takes every
    core of the node, whatever the other workers there do)."""
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        from ..analysis.learned import shared_analyser

        analyser = shared_analyser()
        if analyser is not None and analyser.threads is None:
            analyser.threads = threads
    except ImportError:
        pass


def plan_may_use_network(registry, options: RestoreOptions) -> bool:
    """Whether some photo's plan under ``options`` can run a neural expert (the plan itself
    depends on each photo's analysis, so this looks at every stage the options allow)."""
    from ..experts.base import Backend
    from ..pipeline.plan import STAGE_NAMES, best_expert

    if options.only is not None:
        names = set(options.only)
    elif options.auto:
        names = set(STAGE_NAMES) if options.use_generalist else set(STAGE_NAMES) - {GENERALIST}
    else:
        names = set()
    names |= set(options.strengths)
    for name in names:
        expert_id = options.experts.get(name) or best_expert(registry, name, options.allow_generative)
        if expert_id and registry.get(expert_id).info.backend != Backend.CLASSICAL:
            return True
    if options.scale != 1:
        upscalers = [e for e in registry.for_task(UPSCALE) if e.info.scale == options.scale]
        return bool(upscalers) and upscalers[0].info.backend != Backend.CLASSICAL
    return False


def _import_ray(local: bool):
    # Usage statistics would be sent to anyscale.com; a cluster run must not call out.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ crash handler would also catch SIGTERM (printing a stack dump) before the CLI's
    # handler could stop the run cleanly.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if local:
        # Ray's switch for a one-machine cluster: every service listens on 127.0.0.1 only. Read
        # when Ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
            # A token for this run only (Ray would otherwise write one into ~/.ray for good).
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("--cluster needs Ray: pip install 'restora[cluster]'") from None
    return ray


def connect(settings: ClusterSettings):
    """Start (``local``) or join the cluster; returns the ``ray`` module."""
    ray = _import_ray(settings.address == "local")
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=True)
    try:
        if settings.address == "local":
            cpus = None if settings.workers is None else max(1, int(round(settings.workers * settings.cpus_per_worker)))
            ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     _node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=settings.address, **kwargs)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError... for the same problem
        raise ClusterUnavailable(f"cannot {'start' if settings.address == 'local' else 'reach'} the Ray cluster "
                                 f"{settings.address!r}: {one_line(e, 300)}") from None
    return ray


class _Worker:
    """The driver's view of one actor: its handle and the jobs queued on it, oldest first."""

    def __init__(self, handle, name: str) -> None:
        self.handle = handle
        self.name = name
        self.queue: deque = deque()  # (object ref, job)
        self.description: dict = {}


def restore_on_cluster(batch: Batch, jobs: list[ClusterJob], settings: ClusterSettings,
                       on_result: Callable[[ClusterJob, RestoreResult, Throughput], None],
                       on_progress: Optional[Callable[[Throughput], None]] = None,
                       cancel: Optional[CancelToken] = None) -> Throughput:
    """Restore ``batch`` (checked and prepared as for a local run) on the cluster, one job per
    item (:func:`plan_jobs`); ``on_result`` receives each result in input order (jobs that
    already carry an error included). Raises :class:`ClusterUnavailable` (before
    any file is touched) when the cluster cannot be used. Ray is shut down (``local``) or
    disconnected before returning, also on errors and interrupts. ``cancel``: checked a few
    times a second; when cancelled, the workers are stopped, their temporary files removed and
    :class:`engine.errors.Cancelled` raised."""
    handlers = _signal_handlers()
    ray = connect(settings)
    _restore_signal_handlers(handlers)  # the driver's ray.init makes SIGTERM exit at once; the caller's stays
    run = _Run(ray, batch, jobs, settings, on_result, on_progress, cancel)
    finished = False
    try:
        throughput = run.run()
        finished = True
        return throughput
    finally:
        ray.shutdown()
        if not finished:
            run.remove_temp_files()


def _signal_handlers() -> dict:
    """SIGINT's and SIGTERM's Python handlers (none outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: dict) -> None:
    for signum, handler in handlers.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


#: Seconds the driver waits for a worker's result before it checks for cancellation again.
POLL_S = 0.25


class _Run:
    def __init__(self, ray, batch: Batch, jobs, settings, on_result, on_progress,
                 cancel: Optional[CancelToken] = None) -> None:
        self.ray = ray
        self.cancel = cancel
        self.batch = batch
        self.jobs = jobs
        self.options = batch.options
        self.settings = settings
        self.on_result = on_result
        self.on_progress = on_progress or (lambda throughput: None)
        self.outdir = batch.outdir
        self.order = InOrder()
        self.throughput = Throughput(len(jobs))
        self.pending: deque[ClusterJob] = deque()
        self.workers: list[_Worker] = []
        self.starting: dict = {}  # readiness ref -> _Worker
        self.owner: dict = {}  # task ref -> _Worker
        self.deaths = 0
        self.last_death = ""
        self.started_workers = 0
        self.warned_hosts: set = set()
        self.experts_here: list[str] = []
        self.registry = None
        # What Ray raises when the process running a job is gone (killed, out of memory, node lost).
        self.worker_lost = tuple(getattr(ray.exceptions, name) for name in (
            "RayActorError", "WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
            if hasattr(ray.exceptions, name))

    # ------------------------------------------------------------------ setup
    def _actor_class(self):
        resources = self.ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        cpus = float(resources.get("CPU", 0))
        if self.settings.device == "cuda" and gpus < 1:
            raise ClusterUnavailable("--device cuda: the Ray cluster has no GPU")
        use_gpu = (self.settings.device in ("auto", "cuda") and gpus >= 1
                   and plan_may_use_network(self._local_registry(), self.options))
        if self.settings.workers is not None:
            count = self.settings.workers
        elif use_gpu:
            count = int(gpus)
        else:
            count = int(cpus // self.settings.cpus_per_worker)
        self.worker_count = max(1, min(count, sum(1 for j in self.jobs if j.error is None)))
        threads = max(1, int(self.settings.cpus_per_worker))
        actor = self.ray.remote(RestoreWorker).options(
            num_cpus=self.settings.cpus_per_worker, num_gpus=1 if use_gpu else 0, max_restarts=0,
            max_task_retries=0)
        self.uses_gpu = use_gpu
        cwd = os.getcwd()
        items = self.ray.put(self.batch.items)  # once into the object store, not once per worker
        return lambda: actor.remote(items, str(self.outdir), self.options, self.settings.device, threads, cwd)

    def _local_registry(self):
        """This machine's experts (what a local run would use), built once."""
        if self.registry is None:
            from ..experts.default import build_registry

            self.registry = build_registry(device="cpu")
            self.experts_here = available_experts(self.registry)
        return self.registry

    def _start_worker(self) -> None:
        self.started_workers += 1
        worker = _Worker(self.new_actor(), f"worker {self.started_workers}")
        self.starting[worker.handle.describe.remote()] = worker

    # ------------------------------------------------------------------ main loop
    def run(self) -> Throughput:
        self.pending.extend(job for job in self.jobs if job.error is None)
        try:
            if self.pending:
                self.new_actor = self._actor_class()
                for _ in range(self.worker_count):
                    self._start_worker()
                self._local_registry()  # while the workers start
                self._check_first_worker()
            for job in self.jobs:
                if job.error is not None:
                    self._deliver(job, RestoreResult(input=job.item.path, error=job.error))
            while self.pending or self.owner:
                self._hand_out()
                if not self.owner and not self.starting:
                    self._fail_rest(f"no cluster worker could run ({self.last_death or 'none started'})")
                    break
                ready, _ = self.ray.wait(list(self.owner) + list(self.starting), num_returns=1, timeout=POLL_S)
                self._check_cancel()
                for ref in ready:
                    self._collect(ref)
        finally:
            self._stop_workers()
        return self.throughput

    def _check_first_worker(self) -> None:
        """Wait until one worker is up (models loaded) and sees OUTDIR, or give up clearly."""
        while self.starting and not self.workers:
            deadline = time.monotonic() + self.settings.start_timeout
            ready: list = []
            while not ready and time.monotonic() < deadline:
                ready, _ = self.ray.wait(list(self.starting), num_returns=1,
                                         timeout=max(min(POLL_S, deadline - time.monotonic()), 0.0))
                self._check_cancel()
            if not ready:
                need = f"{self.settings.cpus_per_worker:g} CPU" + (" and 1 GPU" if self.uses_gpu else "")
                raise ClusterUnavailable(f"no Ray worker started within {self.settings.start_timeout:.0f} s "
                                         f"(each needs {need}; the cluster has {self.ray.cluster_resources()})")
            self._collect(ready[0])
        if not self.workers:
            raise ClusterUnavailable(f"the Ray workers could not start: {self.last_death}")
        worker = self.workers[0]
        self.outdir.mkdir(parents=True, exist_ok=True)
        if not self.ray.get(worker.handle.sees.remote(str(self.outdir.resolve()))):
            raise ClusterUnavailable(
                f"{self.outdir}: not visible on the worker at {worker.description.get('host')}; --cluster needs the "
                f"inputs and OUTDIR at the same path on every node (a shared file system)")

    def _check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def _hand_out(self) -> None:
        for worker in self.workers:
            while self.pending and len(worker.queue) < self.settings.in_flight:
                job = self.pending.popleft()
                if job.existed_before is None:
                    job.existed_before = job.target.exists()
                ref = worker.handle.restore.remote(job.index, str(job.target), job.may_replace_own_output)
                worker.queue.append((ref, job))
                self.owner[ref] = worker

    def _collect(self, ref) -> None:
        if ref in self.starting:
            worker = self.starting.pop(ref)
            try:
                worker.description = self.ray.get(ref)
            except self.worker_lost as e:
                self._worker_died(worker, e)
                return
            self.workers.append(worker)
            log.info("%s ready on %s (%s)", worker.name, worker.description.get("host"),
                     worker.description.get("device"))
            self._compare_experts(worker)
            return
        worker = self.owner.get(ref)
        if worker is None:  # its worker died and its jobs were already handed out again
            return
        try:
            result = self.ray.get(ref)
        except self.worker_lost as e:
            self._worker_died(worker, e)
            return
        except self.ray.exceptions.RayTaskError as e:  # an unexpected exception inside the job
            job = self._take(worker, ref)
            self._deliver(job, RestoreResult(input=job.item.path, error=f"{job.item.path}: {one_line(e.cause, 300)}"))
            return
        job = self._take(worker, ref)
        self._deliver(job, result)

    def _compare_experts(self, worker: _Worker) -> None:
        """Warn once per host whose installed models differ from this machine's: its plans, and
        so its outputs, would not be those of a local run here."""
        host = worker.description.get("host")
        theirs = worker.description.get("experts", [])
        if theirs == self.experts_here or host in self.warned_hosts:
            return
        self.warned_hosts.add(host)
        missing = sorted(set(self.experts_here) - set(theirs))
        extra = sorted(set(theirs) - set(self.experts_here))
        log.warning("the worker on %s has other models than this machine (%s): its results will differ from a "
                    "local run here", host, "; ".join(filter(None, [
                        f"missing {', '.join(missing)}" if missing else "",
                        f"extra {', '.join(extra)}" if extra else ""])))

    def _take(self, worker: _Worker, ref) -> ClusterJob:
        del self.owner[ref]
        for i, (queued, job) in enumerate(worker.queue):
            if queued == ref:
                del worker.queue[i]
                return job
        raise AssertionError("a result came back for a job its worker does not hold")

    def _worker_died(self, worker: _Worker, error: BaseException) -> None:
        """Deliver what the worker finished before dying, count the death against the file it
        was working on (its oldest unfinished job), queue the rest again, start a replacement."""
        self.deaths += 1
        self.ray.kill(worker.handle)  # "unavailable" may mean unreachable: it must not write on
        self.last_death = f"{worker.name} died: {one_line(error, 300)}"
        log.warning("%s", self.last_death)
        if worker in self.workers:
            self.workers.remove(worker)
        again: list[ClusterJob] = []
        running_seen = False
        for ref, job in list(worker.queue):
            del self.owner[ref]
            try:
                result = self.ray.get(ref, timeout=0)
            except Exception:
                if not running_seen:
                    running_seen = True
                    job.attempts += 1
                    if job.attempts >= self.settings.max_attempts:
                        self._deliver(job, RestoreResult(
                            input=job.item.path, error=f"{job.item.path}: the cluster worker restoring it died "
                            f"{job.attempts} times (last: {one_line(error, 300)})"))
                        continue
                again.append(job)
                continue
            self._deliver(job, result)
        worker.queue.clear()
        self.pending.extendleft(sorted(again, key=lambda j: j.index, reverse=True))
        if self.deaths <= self.settings.max_attempts * self.worker_count and (self.pending or self.owner):
            self._start_worker()

    def _deliver(self, job: ClusterJob, result: RestoreResult) -> None:
        self.throughput.file_done()
        self.on_progress(self.throughput)
        for ready_job, ready_result in self.order.add(job, result):
            self.on_result(ready_job, ready_result, self.throughput)

    def _fail_rest(self, reason: str) -> None:
        while self.pending:
            job = self.pending.popleft()
            self._deliver(job, RestoreResult(input=job.item.path, error=f"{job.item.path}: not restored: {reason}"))

    def _stop_workers(self) -> None:
        for worker in self.workers + list(self.starting.values()):
            self.ray.kill(worker.handle, no_restart=True)

    def remove_temp_files(self) -> None:
        """After an interrupted run (workers stopped): remove the temporary files of the outputs
        that were being written (a killed writer cannot clean up after itself)."""
        from ..imageio.atomic import leftover_temp_files

        for worker in self.workers:
            for _, job in worker.queue:
                for temp in leftover_temp_files(job.target):
                    temp.unlink(missing_ok=True)
