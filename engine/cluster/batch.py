"""The driver's side of a cluster batch that needs no Ray: output paths, retries, ordering.

Workers run in parallel, so the driver decides every output path before anything runs (a
local run decides them one file at a time) and reports results in input order, exactly as a
local run prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ..pipeline.batch import Batch
from ..pipeline.inputs import BatchItem
from ..pipeline.job import RestoreResult


@dataclass
class ClusterJob:
    """One input of the batch. ``index``: its 0-based position (results are reported in this
    order); ``target``: its output path; ``error``: set when the driver already knows it fails;
    ``attempts``: how many times a worker died while restoring it; ``existed_before``: whether
    ``target`` existed when the run first dispatched this file (``None``: not dispatched yet)."""

    index: int
    item: BatchItem
    target: Path
    error: Optional[str] = None
    attempts: int = 0
    existed_before: Optional[bool] = None

    @property
    def may_replace_own_output(self) -> bool:
        """True on a retry whose output, if present, can only have been written by an earlier
        attempt of this same run (it did not exist when the run began), so replacing it loses
        nothing and leaves exactly one output."""
        return self.attempts > 0 and self.existed_before is False


def plan_jobs(batch: Batch) -> list[ClusterJob]:
    """A job per item of ``batch``, with the output path a local run would give it
    (:meth:`Batch.expected_target`: from the name and the first bytes). Two inputs that would
    write the same output: the first in input order keeps it and the later one fails with the
    local run's message (a local run lets the first that *loads* claim it; here a claim does
    not depend on whether the file turns out to be readable)."""
    jobs: list[ClusterJob] = []
    claimed: dict[Path, Path] = {}
    for index, item in enumerate(batch.items):
        target = batch.expected_target(item)
        job = ClusterJob(index, item, target)
        other = claimed.get(target.resolve())
        if other is not None:
            job.error = f"{item.path}: its output {target} would replace the one from {other}"
        else:
            claimed[target.resolve()] = item.path
        jobs.append(job)
    return jobs


class InOrder:
    """Collects results that arrive in any order and releases them in index order."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[ClusterJob, RestoreResult]] = {}
        self._next = 0

    def add(self, job: ClusterJob, result: RestoreResult) -> Iterator[tuple[ClusterJob, RestoreResult]]:
        """Store ``result`` and yield every result that is now next in line."""
        self._waiting[job.index] = (job, result)
        while self._next in self._waiting:
            yield self._waiting.pop(self._next)
            self._next += 1

    @property
    def released(self) -> int:
        return self._next


class Throughput:
    """Files done out of the total, and files per minute since the first file was handed out."""

    def __init__(self, total: int, clock=time.perf_counter) -> None:
        self.total = total
        self.done = 0
        self._clock = clock
        self._start = clock()

    def file_done(self) -> None:
        self.done += 1

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    @property
    def per_minute(self) -> float:
        elapsed = self.elapsed
        return 60.0 * self.done / elapsed if elapsed > 0 else 0.0

    def describe(self) -> str:
        """``"12/340 files, 8.4 files/min"``."""
        return f"{self.done}/{self.total} files, {self.per_minute:.1f} files/min"
