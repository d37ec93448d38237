"""Processes ductaflow starts: helpers that never run the caller's code nor see its
Ctrl-C, and what an instance started (its kernel, its script), so none outlives its
worker.

Kernels and script flows run in sessions of their own (so a timeout can stop their
whole group), which also means signals to the conductor's group do not reach them.
The worker registers them here and kills them when its conductor dies; they also
watch their parent themselves (``watch_parent``), for when the worker is killed
outright, or dies while it starts them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ductaflow import environment

_LIVE: dict[int, Any] = {}
_LOCK = threading.Lock()
_ENDING = False  # kill_all ran: a process registered from now on is killed at once
_PARENT: int | None = None  # the parent this process must end with (watch_parent)


@contextlib.contextmanager
def interrupt_held() -> Iterator[None]:
    """Start helper processes that never see the caller's Ctrl-C.

    Ctrl-C in a terminal, or a notebook's stop button (Jupyter signals the kernel's
    whole process group), reaches every process in the caller's group. A fork server
    or kernel server hit while it imports would print a ``KeyboardInterrupt``
    traceback into the caller's terminal or cell and die. SIGINT is blocked in this
    thread while they start, so they start with it blocked (a signal mask survives
    fork and exec) and unblock it once they ignore it (``ignore_interrupt``). A
    Ctrl-C pressed meanwhile is held, not lost: it arrives here when the block ends.
    Without ``pthread_sigmask`` (Windows) this does nothing.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def ignore_interrupt() -> None:
    """In a helper process: ignore SIGINT from now on (the conductor decides about
    Ctrl-C), and stop holding it, so what this process starts has a normal mask."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def callers_code_hidden() -> Iterator[None]:
    """Start processes that never run the caller's own code again.

    multiprocessing tells a new process where the main module came from, and the
    process runs it again (as ``__mp_main__``) before its target: a ``conductor.py``
    with top-level code and no ``if __name__ == "__main__":`` guard would conduct again
    in every worker and hang; a script piped to ``python -`` would make every worker
    fail to open ``<stdin>``. Workers need nothing of it (their target and arguments
    are ductaflow's), so for the moment a process starts, the main module names no
    file and no spec.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__")
             if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None  # read with getattr: None means "not started from a module"
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def start(command: list[str], **options: Any) -> Any:
    """Start a flow's process (``subprocess.Popen``) in a group of its own, registered.

    Started and registered under the lock ``kill_all`` takes: a conductor that dies
    while this starts kills it as soon as it exists, never misses it. The process is
    told this one's pid (``watch_parent``).
    """
    import subprocess

    env = {**(options.pop("env", None) or os.environ),
           environment.PARENT_PID: str(os.getpid())}
    with _LOCK:
        process = subprocess.Popen(command, env=env, **options, **_new_group())
        _LIVE[process.pid] = process
        ending = _ENDING
    if ending:
        kill_tree(process)
    return process


def _new_group() -> dict[str, Any]:
    """A session (POSIX) or process group (Windows) of its own, so that a timeout,
    or its end, can stop everything the flow started."""
    if os.name == "posix":
        return {"start_new_session": True}
    import subprocess

    return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}


def register(process: Any) -> None:
    """Remember a process this worker started, to kill it if the worker must end (at
    once when it is ending already)."""
    with _LOCK:
        _LIVE[process.pid] = process
        ending = _ENDING
    if ending:
        kill_tree(process)


def unregister(process: Any) -> None:
    """Forget a process that ended by itself."""
    with _LOCK:
        _LIVE.pop(getattr(process, "pid", None), None)


def kill_all() -> None:
    """Kill every registered process and its group, now, and any registered later."""
    global _ENDING
    with _LOCK:
        _ENDING = True
        processes = list(_LIVE.values())
    for process in processes:
        kill_tree(process)


def end_own_group() -> None:
    """Kill this process's group when it leads one, else just this process."""
    if os.name == "posix" and os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(70)


def kill_group(pid: int) -> None:
    """Kill what is left of the process group ``pid`` led (POSIX), if anything."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.killpg(pid, signal.SIGKILL)


def kill_tree(process: Any) -> None:
    """Kill a process and its whole group (what its flow started), now."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        try:
            process.kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass


def end_after(process: Any) -> None:
    """Wait for ``process`` to exit, then kill what is left of its group: whatever a
    flow started ends with the flow, even a child that kept its output pipe open.

    POSIX waits without reaping (``waitid`` with ``WNOWAIT``), so the group's id
    cannot be taken by a new process before the group is killed. Windows has no
    groups to kill (its flows' children would need a job object).
    """
    if os.name == "posix" and hasattr(os, "waitid"):
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        kill_group(process.pid)
    process.wait()


def watch_parent(interval: float = 0.2, cleanup: Callable[[], None] | None = None) -> None:
    """End this process as soon as its parent is gone (POSIX: it gets re-parented).

    A flow's kernel or script runs as the leader of a session of its own, so this
    kills its whole process group: whatever the flow started goes with it. ``cleanup``
    runs first: a parent killed with -9 never removes what it made for this process.
    The parent is the one that named itself (``DUCTAFLOW_PARENT_PID``): killed while
    it started this process, it is gone before this looks, and this one's parent is
    already another.
    """
    global _PARENT
    named = os.environ.pop(environment.PARENT_PID, "")
    _PARENT = int(named) if named.isdigit() else os.getppid() if os.name == "posix" else None

    def end() -> None:
        if cleanup is not None:
            cleanup()
        end_own_group()

    if parent_gone():
        end()
    when_gone(end, interval=interval, parent=_PARENT)


def parent_gone() -> bool:
    """Whether the parent ``watch_parent`` watches is gone (POSIX; never elsewhere)."""
    return os.name == "posix" and _PARENT is not None and os.getppid() != _PARENT


def when_gone(then: Callable[[], None], pid: int | None = None, interval: float = 0.2,
              parent: int | None = None) -> None:
    """Call ``then`` from a daemon thread once this process's parent (``parent``, or
    the one it has now), or ``pid``, is gone.

    The one "die with my parent" loop of every process ductaflow starts: a worker of
    a Dask cluster, a kernel handed out by the kernel server, a script flow. POSIX
    only: there an orphan is re-parented and a gone pid refuses signal 0; elsewhere
    (Windows) the parent's end is noticed by other means (pipes, job objects).
    """
    if os.name != "posix":
        return
    if parent is None:
        parent = os.getppid()

    def gone() -> bool:
        if pid is None:
            return os.getppid() != parent
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, and someone else's
        return False

    def poll() -> None:
        while not gone():
            time.sleep(interval)
        then()

    threading.Thread(target=poll, daemon=True, name="ductaflow-lifeline").start()
