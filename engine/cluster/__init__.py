"""Restore a batch on a Ray cluster (``restora restore ... --cluster ADDRESS``).

The driver (the ``restora`` process) decides every output path, then hands files to worker
actors; each worker loads its models once and runs the same per-file job as a local run
(:meth:`engine.pipeline.job.Restorer.restore_file`), reading and writing the files itself, so
outputs are byte for byte those of a local run. Ray is the optional ``cluster`` extra and is
imported only when ``--cluster`` is given.
"""

from .batch import ClusterJob, plan_jobs
from .runner import ClusterSettings, ClusterUnavailable, restore_on_cluster

__all__ = ["ClusterJob", "plan_jobs", "ClusterSettings", "ClusterUnavailable", "restore_on_cluster"]
