"""Where the per-call work runs: in the flow's own process, on local worker processes, or on a
Dask cluster of many machines, and what each worker reports about itself (identity, memory).

    SALESCALLS_WORKERS=1 (default)        one call at a time, in the flow's process
    SALESCALLS_WORKERS=4                  a local Dask cluster of 4 worker processes, 1 call each
    SALESCALLS_DASK_ADDRESS=tcp://h:8786  an external Dask scheduler; SALESCALLS_WORKERS then caps
                                          the calls in flight (default: the cluster's threads)

Every worker process loads the models once and keeps them for all the calls it runs. The flow
stays the only database writer whatever the engine: workers return results, never write.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os
import resource
import socket
from dataclasses import dataclass, replace

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from salescalls.config import Settings


@dataclass(frozen=True)
class Engine:
    runner: TaskRunner  # the Prefect task runner the calls are submitted to
    limit: int | None  # calls in flight at once; None: the cluster's worker threads, once connected
    settings: Settings  # as the workers get them (torch threads shared among local workers)
    name: str  # for logs and the runs table: "sequential", "dask local x4", "dask tcp://..."

    def in_flight(self) -> int:
        """The concurrency limit; asks the cluster (connecting to it) when none was configured."""
        if self.limit is not None:
            return self.limit
        threads = sum(self.runner.client.nthreads().values())
        if threads < 1:
            raise RuntimeError(f"the Dask cluster at {self.settings.dask_address} has no workers")
        return threads


def engine_for(settings: Settings, api_url: str | None = None) -> Engine:
    """The engine the settings ask for. `api_url` is the Prefect API the flow reports to; local
    workers are pointed at it so their task runs land in the same place (a temporary local API
    would otherwise be started in each worker)."""
    workers = settings.workers
    if workers is not None and workers < 1:
        raise ValueError(f"SALESCALLS_WORKERS must be 1 or more, not {workers}")
    if settings.dask_address:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=settings.dask_address)
        return Engine(runner, workers, settings, f"dask {settings.dask_address}")
    if not workers or workers == 1:
        return Engine(ThreadPoolTaskRunner(max_workers=1), 1, settings, "sequential")

    from prefect_dask import DaskTaskRunner

    if "threads" not in settings.sources:  # not chosen: share the cores rather than oversubscribe them
        settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines drown the run's log
    keep_malloc_defaults()
    cluster = {
        "n_workers": workers,
        "threads_per_worker": 1,  # whisper's hooks live on the model: one call per process at a time
        "processes": True,
        "dashboard_address": "127.0.0.1:0",  # Dask's status page on a free local port (logged at start)
        "env": {"PREFECT_API_URL": api_url} if api_url else {},
    }
    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)
    return Engine(runner, workers, settings, f"dask local x{workers}")


def keep_malloc_defaults() -> None:
    """Start local workers with glibc's own malloc tuning. Dask's nanny sets
    MALLOC_TRIM_THRESHOLD_=65536 before spawning a worker, which also turns off glibc's adaptive
    mmap threshold: every large tensor is then mapped and unmapped afresh, and pyannote's
    diarization ran 2.2x slower in such a process (c03: 16.6 s against 7.6 s). Memory is still
    given back after each call (`release_memory`). A value the user exported is kept."""
    import dask

    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})


def worker_name() -> str:
    """host:pid of the process running a call."""
    return f"{socket.gethostname()}:{os.getpid()}"


def memory_mb() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        now = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux: the peak is the best we have
        now = peak
    return round(now, 1), round(peak, 1)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Give the memory freed by the last call back to the system. glibc keeps freed blocks in its
    arenas, so without this a long-lived worker's resident memory creeps up by about 0.4 MB per
    call although no object outlives its call (measured with tracemalloc: Python objects grew by
    0.2 MB over 70 calls, and malloc_trim brought resident memory below its level at call 10)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
