"""Processes an instance started (its kernel, its script), so none outlives its worker.

Kernels and script flows run in sessions of their own (so a timeout can stop their
whole group), which also means signals to the conductor's group do not reach them.
The worker registers them here and kills them when its conductor dies; script flows
also watch their parent themselves (``watch_parent``), for when the worker is killed
outright.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

_LIVE: dict[int, Any] = {}
_LOCK = threading.Lock()


def register(process: Any) -> None:
    with _LOCK:
        _LIVE[process.pid] = process


def unregister(process: Any) -> None:
    with _LOCK:
        _LIVE.pop(getattr(process, "pid", None), None)


def kill_all() -> None:
    """Kill every registered process and its group, now."""
    with _LOCK:
        processes = list(_LIVE.values())
    for process in processes:
        kill_tree(process)


def end_own_group() -> None:
    """Kill this process's group when it leads one, else just this process."""
    if os.name == "posix" and os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(70)


def kill_tree(process: Any) -> None:
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


def watch_parent(interval: float = 0.2, cleanup: Any = None) -> None:
    """End this process as soon as its parent is gone (POSIX: it gets re-parented).

    A flow's kernel or script runs as the leader of a session of its own, so this
    kills its whole process group: whatever the flow started goes with it. ``cleanup``
    runs first: a parent killed with -9 never removes what it made for this process.
    """
    if os.name != "posix":
        return
    parent = os.getppid()

    def poll() -> None:
        while True:
            threading.Event().wait(interval)
            if os.getppid() != parent:
                if cleanup is not None:
                    cleanup()
                end_own_group()

    threading.Thread(target=poll, daemon=True, name="ductaflow-watch-parent").start()
