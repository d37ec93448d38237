"""The runs folder's lock: one conductor at a time changes a runs folder.

Runs in the conductor. An OS-level lock on ``<runs>/.conductor.lock``: the OS releases
it when its holder dies, even by ``kill -9``, so it is never stale and nobody has to
unlock anything by hand. Where ``flock`` works (Linux, macOS: the common case) it is
taken directly, as ``filelock`` would take it and compatible with it; elsewhere
(Windows, a file system without ``flock``) by ``filelock``. Importing ``filelock``
cost a no-op conduct a fifth of its time.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from pathlib import Path
from typing import Any

from ductaflow.errors import LockedError
from ductaflow.model import EventHandler
from ductaflow.run_folder.files import LOCK, unlinked

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: The descriptors this process holds a lock through: a forked child (a worker, the
#: fork server) closes its copies, so that only this process keeps the lock alive.
_HELD: set[int] = set()
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


class RunsLock:
    """The lock of one runs folder, taken at most once by one conduct."""

    def __init__(self, runs_dir: Path, wait: bool, notify: EventHandler):
        self.runs_dir = runs_dir
        self.path = runs_dir / LOCK
        self.wait = wait
        self.notify = notify
        self.was_new = False
        self.held = False
        self.fd: int | None = None  # flock's
        self.fallback: Any = None  # filelock's FileLock, where flock is not to be had

    def take_if_free(self) -> bool:
        """Take the lock if its file exists and no one holds it; never creates anything
        (a no-op conduct then writes nothing at all)."""
        self.was_new = self.path.is_symlink() or not self.path.exists()
        if self.was_new:  # (a link is removed by take: locking would write through it)
            return False
        self.held = self._take(block=False)
        return self.held

    def take(self) -> None:
        """Take the lock, waiting for another conduct unless told not to."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        unlinked(self.path)
        if not self._take(block=False):
            if not self.wait:
                raise LockedError(f"another conduct is running on {self.runs_dir}",
                                  hint="wait for it, or run without --no-wait") from None
            self.notify("waiting", self.path)
            self._take(block=True)
        self.held = True

    def release(self) -> None:
        """Let the next conduct in; harmless when not held."""
        if not self.held:
            return
        if self.fd is not None:
            _HELD.discard(self.fd)
            os.close(self.fd)  # closing the last descriptor releases a flock
            self.fd = None
        else:
            self.fallback.release()
        self.held = False

    def _take(self, block: bool) -> bool:
        if self.fallback is None and fcntl is not None:
            taken = self._flock(block)
            if taken is not None:
                return taken
        return self._filelock(block)

    def _flock(self, block: bool) -> bool | None:
        """True: taken; False: someone holds it; None: no ``flock`` here."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError:
            return None  # let filelock say what is wrong with the file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                return False
            return None
        except BaseException:  # Ctrl-C while waiting
            os.close(fd)
            raise
        self.fd = fd
        _close_in_forks()
        _HELD.add(fd)
        return True

    def _filelock(self, block: bool) -> bool:
        from filelock import FileLock, Timeout

        if self.fallback is None:
            self.fallback = FileLock(str(self.path))
        try:
            self.fallback.acquire(timeout=-1 if block else 0)
        except Timeout:
            return False
        return True


@functools.cache
def _close_in_forks() -> None:
    """Once per process: a forked child closes its copies of the held descriptors."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_close_in_child)


def _close_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
