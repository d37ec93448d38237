"""The runs folder's lock: one conductor at a time changes a runs folder.

Runs in the conductor. An OS-level lock (``filelock``) on ``<runs>/.conductor.lock``:
the OS releases it when its holder dies, even by ``kill -9``, so it is never stale
and nobody has to unlock anything by hand.
"""

from __future__ import annotations

from pathlib import Path

from ductaflow.errors import LockedError
from ductaflow.model import EventHandler
from ductaflow.run_folder.files import LOCK, unlinked


class RunsLock:
    """The lock of one runs folder, taken at most once by one conduct."""

    def __init__(self, runs_dir: Path, wait: bool, notify: EventHandler):
        from filelock import FileLock

        self.runs_dir = runs_dir
        self.path = runs_dir / LOCK
        self.lock = FileLock(str(self.path))
        self.wait = wait
        self.notify = notify
        self.was_new = False
        self.held = False

    def take_if_free(self) -> bool:
        """Take the lock if its file exists and no one holds it; never creates anything
        (a no-op conduct then writes nothing at all)."""
        from filelock import Timeout

        self.was_new = self.path.is_symlink() or not self.path.exists()
        if self.was_new:  # (a link is removed by take: locking would write through it)
            return False
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            return False
        self.held = True
        return True

    def take(self) -> None:
        """Take the lock, waiting for another conduct unless told not to."""
        from filelock import Timeout

        self.runs_dir.mkdir(parents=True, exist_ok=True)
        unlinked(self.path)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            if not self.wait:
                raise LockedError(f"another conduct is running on {self.runs_dir}",
                                  hint="wait for it, or run without --no-wait") from None
            self.notify("waiting", self.path)
            self.lock.acquire()
        self.held = True

    def release(self) -> None:
        """Let the next conduct in; harmless when not held."""
        if self.held:
            self.lock.release()
            self.held = False
