"""The runs folder's lock, taken with ``flock`` where it works: compatible with
``filelock`` (tools, or an older ductaflow, that lock the same file), refused or
waited for as before, never kept alive by a forked child, and never created by a
conduct that finds the runs folder without one."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from ductaflow.errors import LockedError
from ductaflow.run_folder.files import LOCK
from ductaflow.run_folder.lock import RunsLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock: POSIX only")


def _lock(runs: Path, wait: bool = False, seen: list | None = None) -> RunsLock:
    events = seen if seen is not None else []
    return RunsLock(runs, wait, lambda kind, payload: events.append(kind))


def test_a_held_lock_is_held_for_filelock_too_and_the_other_way_round(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ours = _lock(runs)
    ours.take()
    with pytest.raises(Timeout):
        FileLock(str(runs / LOCK)).acquire(timeout=0)
    ours.release()
    theirs = FileLock(str(runs / LOCK))
    with theirs:
        assert not _lock(runs).take_if_free()
        with pytest.raises(LockedError):
            _lock(runs).take()
    assert _lock(runs).take_if_free()


def test_the_second_conduct_waits_for_the_first(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = _lock(runs)
    first.take()
    seen: list = []
    second = _lock(runs, wait=True, seen=seen)
    waiter = threading.Thread(target=second.take)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and seen == ["waiting"]
    first.release()
    waiter.join(5)
    assert not waiter.is_alive() and second.held
    second.release()
    second.release()  # harmless


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    held = _lock(runs)
    held.take()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child sleeps on, as a worker or a fork server would
        os.close(read)
        os.write(write, b"x")
        time.sleep(3)
        os._exit(0)
    try:
        os.close(write)
        os.read(read, 1)
        held.release()
        assert _lock(runs).take_if_free()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def test_finding_no_lock_file_creates_none(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    lock = _lock(runs)
    assert not lock.take_if_free() and lock.was_new
    assert not (runs / LOCK).exists()
