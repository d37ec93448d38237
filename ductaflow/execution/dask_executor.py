"""Run instances on a Dask cluster: ``conduct(..., executor="dask")``.

The conductor keeps planning, the runs-folder lock, bookkeeping, the results file and
the report; a Dask worker only runs ``execute_instance`` for one instance at a time
(papermill and the flow helpers use process-wide state: start workers with
``--nthreads 1``; a worker with more threads still runs one instance at a time).
``distributed`` is imported only here, and only when a ``DaskExecutor`` is made.

A task may run twice (dask/distributed#2935): the scheduler reruns a task whose
worker died or was thought dead, up to ``distributed.scheduler.allowed-failures``
times (3 by default), then the future fails with ``KilledWorker``. Submissions use
``pure=False``, a unique key and ``retries=0``, so an exception is never retried. On
the worker each attempt holds an OS lock on ``.ductaflow/dask_attempt.lock`` in the
instance folder while it runs (released by the OS when the worker dies), so two
attempts never run in one folder at once; a finished attempt leaves
``.ductaflow/dask_attempt.json`` naming its submission, and a later attempt of the
same submission returns that result instead of running the flow again. So an
instance is recorded done once per submission, and a record is only ever written by
an attempt that finished (``execute_instance`` writes it last).

Ctrl-C (``stop``) sets a Dask ``Event``: tasks not yet started return at once, and
each running task kills its flow's processes, marks its folder "started" again (the
next plan says ``last run incomplete``) and returns; futures still outstanding after
a grace period are cancelled. The workers of a ``LocalCluster`` started here ignore
the terminal's Ctrl-C (it is the conductor's to handle) and exit if the conductor dies
(``dask_setup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ductaflow import __version__
from ductaflow.errors import UsageError
from ductaflow.execution import processes
from ductaflow.execution.contract import failed_result
from ductaflow.execution.instance import ExecOptions, execute_instance, instance_dir
from ductaflow.model import Action, Instance, RunResult, Status
from ductaflow.run_folder import records
from ductaflow.run_folder.files import (
    DASK_ATTEMPT_FILE,
    DASK_ATTEMPT_LOCK,
    STATE_DIR,
    real_folder,
    unlinked,
)

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "ductaflow[dask]"'
#: How long the conductor waits for a worker to run its first (checking) task.
WORKER_WAIT_S = 600.0
#: After Ctrl-C, how long running tasks get to kill their flows and report back.
STOP_GRACE_S = 15.0
_CAPACITY_TTL_S = 2.0
_WATCH_INTERVAL_S = 1.0
_ONE_AT_A_TIME = threading.Lock()


@dataclass
class _Task:
    instance: Instance
    reason: str
    future: Any
    started: float = field(default_factory=time.monotonic)


class DaskExecutor:
    """Instances run as Dask tasks: on a ``LocalCluster`` of ``jobs`` worker processes,
    on the cluster at ``scheduler``, or through a ready ``client`` (never closed here).

    ``flows`` (project-relative) are checked up front, with the project root and the
    runs folder, on the first worker to answer; flows submitted later are checked on
    first use.
    """

    def __init__(self, options: ExecOptions, jobs: int, *, scheduler: str | None = None,
                 client: Any = None, flows: Sequence[str] = ()) -> None:
        self._dd = _import_distributed()
        if client is not None and scheduler:
            raise UsageError("give a Dask scheduler address or a Client, not both")
        self.options = options
        self.client = client
        self._cluster: Any = None
        self._own_client = client is None
        self._tasks: dict[str, _Task] = {}
        self._checked: set[str] = set()
        self._wake = threading.Event()
        self._workers, self._counted_at = 0, float("-inf")
        self._no_workers_since: float | None = None
        try:
            if client is None:
                self.client, self._cluster = _connect(self._dd, scheduler, jobs)
            self._stop = self._dd.Event(f"ductaflow-stop-{uuid.uuid4().hex}",
                                        client=self.client)
            self._ensure_visible(flows)
            _warn_about_threads(self.client)
        except BaseException:
            self.close()
            raise

    @property
    def capacity(self) -> int:
        """Worker processes in the cluster now (workers may come and go)."""
        self._count_workers()
        return max(1, self._workers)

    def _count_workers(self) -> None:
        now = time.monotonic()
        if now - self._counted_at < _CAPACITY_TTL_S:
            return
        self._counted_at = now
        with contextlib.suppress(OSError, TimeoutError):
            self._workers = len(self.client.nthreads())
        if self._workers:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now

    def submit(self, instance: Instance, reason: str) -> None:
        """Send the instance to the cluster as one task with a key of its own."""
        self._ensure_visible([instance.flow])
        key = f"ductaflow-{instance.stage}-{instance.name}-{uuid.uuid4().hex}"
        future = self.client.submit(run_on_worker, instance, reason, self.options, key,
                                    self._stop.name, key=key, pure=False, retries=0)
        future.add_done_callback(lambda _: self._wake.set())
        self._tasks[instance.key] = _Task(instance, reason, future)

    def running(self) -> dict[str, float]:
        """Each submitted instance not yet collected, with its start."""
        return {key: task.started for key, task in self._tasks.items()}

    def wait(self, timeout: float | None) -> list[RunResult]:
        """Results of the instances that finished within ``timeout`` seconds."""
        if not self._tasks:
            return []
        if not any(task.future.done() for task in self._tasks.values()):
            self._wake.wait(timeout)
        self._wake.clear()
        if self._deserted():
            return self._give_up(f"WorkerDied: no Dask worker for {WORKER_WAIT_S:.0f} s")
        finished = sorted(key for key, task in self._tasks.items() if task.future.done())
        return [self._collect(key) for key in finished]

    def _deserted(self) -> bool:
        """The cluster has had no worker for ``WORKER_WAIT_S``: nothing will finish."""
        self._count_workers()
        since = self._no_workers_since
        return since is not None and time.monotonic() - since > WORKER_WAIT_S

    def _give_up(self, error: str) -> list[RunResult]:
        """Every outstanding instance fails and stays "not done" on disk."""
        tasks = [self._tasks.pop(key) for key in sorted(self._tasks)]
        self._cancel([task.future for task in tasks])
        return [failed_result(t.instance, t.reason, error, time.monotonic() - t.started)
                for t in tasks]

    def stop(self) -> list[str]:
        """Ctrl-C: running flows are killed and left "not done"; the rest never start."""
        stopped = list(self._tasks)
        futures = [task.future for task in self._tasks.values()]
        try:
            self._stop.set()
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            log.warning("cannot tell the Dask workers to stop: %s", exc)
        deadline = time.monotonic() + STOP_GRACE_S
        while not all(f.done() for f in futures) and time.monotonic() < deadline:
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
        self._cancel(futures)
        self._tasks.clear()
        return stopped

    def close(self) -> None:
        """Cancel what is left; close the client and cluster this executor started."""
        self._cancel([task.future for task in self._tasks.values()])
        self._tasks.clear()
        for thing in (self.client if self._own_client else None, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except (OSError, TimeoutError, asyncio.TimeoutError, RuntimeError) as exc:
                    log.warning("closing %s: %s", type(thing).__name__, exc)

    def _collect(self, key: str) -> RunResult:
        task = self._tasks.pop(key)
        future = task.future
        try:
            if future.status == "finished":
                result = future.result()
                if isinstance(result, RunResult):
                    return result
                error = f"WorkerDied: unexpected task result {result!r:.100}"
            elif future.status == "error":
                error = _describe(future.exception())
            else:
                error = f"WorkerDied: the Dask task was {future.status}"
        except Exception as exc:  # noqa: BLE001 - a lost result is a failed instance
            error = _describe(exc, lost=True)
        finally:
            future.release()
        return failed_result(task.instance, task.reason, error,
                             time.monotonic() - task.started)

    def _cancel(self, futures: list[Any]) -> None:
        if futures and self.client is not None:
            with contextlib.suppress(OSError, TimeoutError, asyncio.TimeoutError,
                                     RuntimeError):
                self.client.cancel(futures)

    def _ensure_visible(self, flows: Sequence[str]) -> None:
        """Fail early, naming path and worker, when the project is not shared."""
        root = self.options.project_root
        wanted = [str(root), str(self.options.runs_dir), *(str(root / f) for f in flows)]
        paths = [p for p in dict.fromkeys(wanted) if p not in self._checked]
        if not paths:
            return
        seen = self._on_a_worker(look_on_worker, paths)
        where = f"Dask worker {seen['worker']} (host {seen['host']})"
        if seen["missing"]:
            raise UsageError(f"{seen['missing'][0]} is not visible on {where}",
                             hint="workers need the project folder on a shared "
                                  "filesystem, at the same path as here")
        if seen["version"] != __version__:
            raise UsageError(f"{where} has ductaflow {seen['version']}, this conductor "
                             f"{__version__}", hint="use the same environment everywhere")
        self._checked.update(paths)

    def _on_a_worker(self, function: Any, *args: Any) -> Any:
        future = self.client.submit(function, *args, pure=False,
                                    key=f"ductaflow-check-{uuid.uuid4().hex}")
        try:
            return future.result(timeout=WORKER_WAIT_S)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise UsageError(f"no Dask worker ran a task within {WORKER_WAIT_S:.0f} s",
                             hint="are workers connected to the scheduler?") from exc
        except Exception as exc:  # noqa: BLE001 - whatever broke on the worker
            raise UsageError(f"a Dask worker cannot run ductaflow: {_describe(exc)}",
                             hint="install the same Python environment, with ductaflow, "
                                  "on every worker") from exc
        finally:
            future.release()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise UsageError("the Dask executor needs the distributed package",
                         hint=INSTALL_HINT) from exc
    return distributed


def _connect(dd: Any, scheduler: str | None, jobs: int) -> tuple[Any, Any]:
    """A client of the scheduler at ``scheduler``, or of a new ``LocalCluster``."""
    if scheduler:
        try:
            _probe(scheduler)
            return dd.Client(scheduler, set_as_default=False), None
        except (OSError, TimeoutError, asyncio.TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}",
                             hint="is `dask scheduler` running there?") from exc
    with processes.callers_code_hidden():  # Dask spawns its workers: never re-run a script
        cluster = dd.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=logging.ERROR, preload=[__name__])
    try:
        return dd.Client(cluster, set_as_default=False), cluster
    except BaseException:
        cluster.close()
        raise


def _probe(address: str) -> None:
    """Refuse a bad address fast: a Client that fails to connect takes its timeout
    again to close."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    scheme, location = parse_address(address)
    get_backend(scheme)  # ValueError: unknown scheme
    if scheme == "tcp":
        socket.create_connection(parse_host_port(location), timeout=10).close()


def _warn_about_threads(client: Any) -> None:
    crowded = sorted(w for w, n in client.nthreads().items() if n > 1)
    if crowded:
        log.warning("Dask workers with more than one thread run one instance at a time: "
                    "start them with --nthreads 1 (%s)", ", ".join(crowded))


def _describe(exc: BaseException | None, lost: bool = False) -> str:
    """``WorkerDied: KilledWorker: ...`` for a lost worker or result, else ``Type: message``."""
    text = str(exc).strip().splitlines()
    summary = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    lost = lost or type(exc).__name__ == "KilledWorker"
    return f"WorkerDied: {summary}" if lost else summary





# --- on the worker ---------------------------------------------------------------------


def dask_setup(worker: Any) -> None:
    """Preloaded by the workers of the ``LocalCluster`` a conduct starts (Dask calls it).

    Ctrl-C in the terminal reaches the whole process group: it belongs to the
    conductor, which stops the flows itself. And a worker exits when the conductor
    (its parent) dies, as local worker processes do.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes.when_gone(_die, interval=1.0)


def _die() -> None:
    processes.kill_all()
    os._exit(70)


def look_on_worker(paths: list[str]) -> dict[str, Any]:
    """Which of ``paths`` this worker cannot see, and who it is."""
    from distributed import get_worker

    return {"worker": get_worker().address, "host": socket.gethostname(),
            "missing": [p for p in paths if not os.path.exists(p)], "version": __version__}


def run_on_worker(instance: Instance, reason: str, options: ExecOptions, token: str,
                  stop_name: str) -> RunResult:
    """The Dask task: run one instance, at most once per submission (``token``)."""
    from distributed import Event

    started = time.monotonic()
    missing = [p for p in (options.project_root / instance.flow, options.runs_dir)
               if not p.exists()]
    if missing:
        return failed_result(instance, reason, f"NotShared: {missing[0]} is not visible on "
                             f"host {socket.gethostname()}", time.monotonic() - started)
    run_dir = instance_dir(options.runs_dir, instance)
    real_folder(run_dir / STATE_DIR)
    stop = Event(stop_name)
    with _ONE_AT_A_TIME, _attempt_lock(run_dir):
        if stop.is_set():
            return failed_result(instance, reason, "Interrupted", 0.0)
        earlier = earlier_attempt(run_dir, token)
        if earlier is not None:
            return earlier
        with _StopWatch(stop) as watch, _quiet():
            result = execute_instance(instance, reason, options)
        if watch.stopped and result.action is Action.FAILED:
            records.write_started(run_dir, {"stage": instance.stage, "instance": instance.name,
                                          "flow": instance.flow, "reason": "interrupted"})
            return replace(result, action=Action.FAILED, status=Status.ERROR,
                           error="Interrupted")
        save_attempt(run_dir, token, result)
        return result


@contextlib.contextmanager
def _attempt_lock(run_dir: Path) -> Iterator[None]:
    """Hold the instance folder for this attempt; the OS releases it if we die."""
    from filelock import FileLock

    lock = FileLock(str(unlinked(run_dir / DASK_ATTEMPT_LOCK)))
    try:
        lock.acquire()
    except NotImplementedError:  # a filesystem without flock (some Lustre mounts)
        log.warning("no file locks on %s: a rerun attempt may overlap a lost one", run_dir)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def earlier_attempt(run_dir: Path, token: str) -> RunResult | None:
    """The result of an attempt of this submission that finished, if one did."""
    try:
        saved = json.loads((run_dir / DASK_ATTEMPT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("token") != token:
        return None
    if records.read_record(run_dir) is None:
        return None
    fields = dict(saved["result"])
    fields["action"] = Action(fields["action"])
    fields["status"] = Status(fields["status"]) if fields.get("status") else None
    return RunResult(**fields)


def save_attempt(run_dir: Path, token: str, result: RunResult) -> None:
    """Keep a task's result in its folder, so a resubmitted task finds it."""
    text = json.dumps({"token": token, "result": asdict(result)}, ensure_ascii=False)
    records.atomic_write_text(run_dir / DASK_ATTEMPT_FILE, text)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """What the engine prints belongs to the flow's output file, not the worker's log."""
    with open(os.devnull, "w", encoding="utf-8") as sink, \
            contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


class _StopWatch:
    """While the flow runs, kill its kernel or script once the conductor says stop."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.done = threading.Event()
        self.stopped = False

    def __enter__(self) -> _StopWatch:
        threading.Thread(target=self._watch, name="ductaflow stop watch", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()

    def _watch(self) -> None:
        while not self.done.wait(_WATCH_INTERVAL_S):
            try:
                self.stopped = self.stop.is_set()
            except Exception:  # noqa: BLE001 - scheduler gone: nobody can say stop
                return
            if self.stopped:
                break
        while not self.done.is_set():  # kill what the flow runs, until it gives up
            processes.kill_all()
            self.done.wait(0.1)
