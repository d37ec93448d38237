"""The local executor: worker processes on this machine (``execution.contract``).

Runs in the conductor (``LocalExecutor``) and in each worker (``_worker_main``). It
starts one fresh process per instance (no state can leak from one instance to the
next), forked from a ``forkserver`` that has imported the execution
machinery once, or spawned where the OS has no fork. Each worker holds the read end
of a lifeline pipe whose only writer is the conductor: when the conductor dies, even
by ``kill -9``, the worker sees end-of-file and exits at once, and its kernel (whose
parent it is) follows.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ductaflow.execution import processes
from ductaflow.execution.contract import failed_result
from ductaflow.execution.instance import ExecOptions, execute_instance
from ductaflow.model import Instance, RunResult

#: Extra seconds a worker gets past ``--timeout`` before the conductor kills it; the
#: engine's own timeout normally ends the flow first and records it properly.
KILL_GRACE_S = 30.0
_PRELOAD = ["ductaflow.execution.local", "ductaflow.execution.warmup"]


@dataclass
class _Job:
    instance: Instance
    reason: str
    process: Any
    results: Connection
    lifeline: Connection
    started: float = field(default_factory=time.monotonic)


class LocalExecutor:
    """Up to ``jobs`` worker processes on this machine, one per instance."""

    def __init__(self, options: ExecOptions, jobs: int) -> None:
        self.options = options
        self.capacity = jobs
        self._ctx = _context(options.mode)
        self._jobs: dict[str, _Job] = {}
        self._leaving: list[_Job] = []

    def submit(self, instance: Instance, reason: str) -> None:
        """Start a worker process for ``instance``, with a pipe for its result and
        a lifeline that ends it when the conductor dies."""
        results_r, results_w = self._ctx.Pipe(duplex=False)
        lifeline_r, lifeline_w = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main, name=f"ductaflow {instance.key}",
            args=(results_w, lifeline_r, instance, reason, self.options, dict(os.environ)))
        # A Ctrl-C held while it starts arrives once the worker is known, so it is stopped.
        with processes.callers_code_hidden(), processes.interrupt_held():
            process.start()
            results_w.close()
            lifeline_r.close()
            self._jobs[instance.key] = _Job(instance, reason, process, results_r, lifeline_w)

    def running(self) -> dict[str, float]:
        """Each running instance's key and start."""
        return {key: job.started for key, job in self._jobs.items()}

    def wait(self, timeout: float | None) -> list[RunResult]:
        """Results of the instances that finished within ``timeout`` seconds."""
        if not self._jobs:
            return []
        self._kill_overdue()
        handles = {job.process.sentinel: key for key, job in self._jobs.items()}
        handles.update({job.results: key for key, job in self._jobs.items()})
        ready = wait(list(handles), timeout)
        finished = {handles[h] for h in ready}
        return [self._collect(key) for key in sorted(finished)]

    def stop(self) -> list[str]:
        """Stop every running instance (Ctrl-C); they stay "not done" on disk.

        SIGTERM first: the worker kills its kernel or script at once and exits.
        """
        stopped = list(self._jobs)
        for job in self._jobs.values():
            job.process.terminate()
        for job in [*self._jobs.values(), *self._leaving]:
            _end(job, 3)
        self._jobs.clear()
        self._leaving.clear()
        return stopped

    def close(self) -> None:
        """Wait for the workers that sent their result and are still exiting."""
        for job in self._leaving:
            _end(job, 10)
        self._leaving.clear()

    def _collect(self, key: str) -> RunResult:
        job = self._jobs.pop(key)
        result = None
        try:
            if job.results.poll(0):
                result = job.results.recv()
        except (EOFError, OSError):
            result = None
        if isinstance(result, (RunResult, str)):
            # Its record is written and its kernel gone: the worker only has to exit,
            # which it may do while the next instance starts.
            self._leaving.append(job)
            self._reap()
        else:
            _end(job, 10)
        if isinstance(result, RunResult):
            return result
        if isinstance(result, str):  # the worker's own error, already "Type: message"
            return _worker_failed(job, result)
        return _worker_failed(job, f"WorkerDied: exit code {job.process.exitcode}")

    def _reap(self) -> None:
        for job in [job for job in self._leaving if not job.process.is_alive()]:
            _end(job, 0)
            self._leaving.remove(job)

    def _kill_overdue(self) -> None:
        if self.options.timeout is None:
            return
        limit = self.options.timeout + KILL_GRACE_S
        for job in self._jobs.values():
            if time.monotonic() - job.started > limit:
                _kill(job.process)


def _context(mode: str) -> Any:
    """forkserver on POSIX (fork-safe, heavy imports paid once), spawn elsewhere."""
    if sys.platform != "win32" and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        preload = _PRELOAD if mode == "notebook" else _PRELOAD[:1]
        ctx.set_forkserver_preload(preload)
        return ctx
    return multiprocessing.get_context("spawn")


def _in_fork_server() -> bool:
    """Whether this import is the fork server's preload (``_PRELOAD``)."""
    frame = sys._getframe()
    while frame is not None:
        if (frame.f_code.co_name == "main"
                and frame.f_globals.get("__name__") == "multiprocessing.forkserver"):
            return True
        frame = frame.f_back
    return False


if _in_fork_server():
    # The fork server ends when its conductor does (even by kill -9); with papermill
    # imported, Python's own clean-up would keep it for 0.2 s, seconds under load. It
    # holds nothing to flush: end at once. (Workers it forks end with os._exit.)
    atexit.register(os._exit, 0)


def start_early(mode: str) -> None:
    """Start the fork server now, so its imports (0.7 s for notebooks) overlap with
    whatever the conductor does before its first instance, instead of delaying it."""
    if _context(mode).get_start_method() == "forkserver":
        from multiprocessing import forkserver, resource_tracker

        # Starting the resource tracker unblocks SIGINT: start it before holding it.
        resource_tracker.ensure_running()
        with processes.callers_code_hidden(), processes.interrupt_held():
            forkserver.ensure_running()


def _worker_main(results: Connection, lifeline: Connection, instance: Instance, reason: str,
                 options: ExecOptions, environ: dict[str, str]) -> None:
    """Inside the worker: run, send the result; die with the conductor.

    The environment is the conductor's at submit time, not the fork server's at its
    start: a flow sees the variables its conductor had.
    """
    processes.ignore_interrupt()  # the conductor decides about Ctrl-C
    signal.signal(signal.SIGTERM, _stop_now)
    os.environ.clear()
    os.environ.update(environ)
    _silence_terminal()
    threading.Thread(target=_die_with_conductor, args=(lifeline,), daemon=True).start()
    try:
        results.send(execute_instance(instance, reason, options))
    except BaseException as exc:  # noqa: BLE001 - report anything back, never hang
        results.send(f"{type(exc).__name__}: {exc}")
    finally:
        results.close()


def _stop_now(signum: int, frame: Any) -> None:
    processes.kill_all()
    os._exit(143)


def _die_with_conductor(lifeline: Connection) -> None:
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    processes.kill_all()
    os._exit(70)


def _silence_terminal() -> None:
    """Flows print into their output files; nothing of theirs belongs on our terminal."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def _kill(process: Any) -> None:
    try:
        process.kill()
    except (OSError, AttributeError):
        pass


def _end(job: _Job, wait_s: float) -> None:
    """Join the worker, killed when it has not exited within ``wait_s``."""
    job.process.join(wait_s)
    if job.process.is_alive():
        _kill(job.process)
        job.process.join(5)
    _close(job)


def _close(job: _Job) -> None:
    for conn in (job.results, job.lifeline):
        try:
            conn.close()
        except OSError:
            pass


def _worker_failed(job: _Job, error: str) -> RunResult:
    return failed_result(job.instance, job.reason, error, time.monotonic() - job.started)
