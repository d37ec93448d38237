"""The executor contract: what the conductor asks of wherever instances run.

Runs in the conductor. ``execution.local`` (worker processes on this machine),
``execution.dask_executor`` (a Dask cluster) and ``Idle`` (nothing to run) all keep
it, and ``conduct(executor=...)`` accepts any other object that does; adding an
executor means writing these six members (``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ductaflow.model import Action, Instance, RunResult, Status


@runtime_checkable
class Executor(Protocol):
    """Runs instances; the conductor decides what runs and when.

    ``submit`` starts one instance; ``wait`` returns the results of those that
    finished within ``timeout`` seconds (an instance's failure is a result, never an
    exception); ``running`` maps each running instance's key to its start
    (``time.monotonic()``); ``stop`` (Ctrl-C) stops them all and returns their keys,
    left "not done" on disk; ``close`` releases what the executor started.
    """

    @property
    def capacity(self) -> int:
        """How many instances may run at once now."""
        ...

    def submit(self, instance: Instance, reason: str) -> None:
        """Start ``instance``; its result comes back through ``wait``."""
        ...

    def wait(self, timeout: float | None) -> list[RunResult]:
        """Results of the instances that finished within ``timeout`` seconds."""
        ...

    def running(self) -> dict[str, float]:
        """Each running instance's key and start (``time.monotonic()``)."""
        ...

    def stop(self) -> list[str]:
        """Ctrl-C: stop every running instance; their keys, left "not done"."""
        ...

    def close(self) -> None:
        """Release what this executor started (processes, a cluster)."""
        ...


class Idle:
    """The executor of a conduct with nothing to run: starts nothing, imports nothing."""

    capacity = 0

    def submit(self, instance: Instance, reason: str) -> None:
        """Never called: the conductor submits nothing when nothing is to run."""
        raise RuntimeError(f"nothing was to run, yet {instance.key} was submitted")

    def wait(self, timeout: float | None) -> list[RunResult]:
        """Nothing runs, so nothing finishes."""
        return []

    def running(self) -> dict[str, float]:
        """Nothing runs."""
        return {}

    def stop(self) -> list[str]:
        """Nothing to stop."""
        return []

    def close(self) -> None:
        """Nothing was started."""


def failed_result(instance: Instance, reason: str, error: str, duration_s: float) -> RunResult:
    """An instance whose worker could not run it to the end (died, lost, interrupted):
    a failure like a flow's, so its dependents are blocked and the rest go on."""
    return RunResult.of(instance, Action.FAILED, Status.ERROR, reason, duration_s, error)
