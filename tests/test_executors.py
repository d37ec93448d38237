"""The executor contract: the local, Dask and idle executors keep it, a caller's own
executor that keeps it runs a conduct, and one that does not is refused up front."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from ductaflow.errors import UsageError
from ductaflow.execution.contract import Executor, Idle
from ductaflow.execution.dask_executor import DaskExecutor
from ductaflow.execution.instance import execute_instance
from ductaflow.execution.local import LocalExecutor
from ductaflow.model import Action, ExecOptions, Instance, RunResult, Status

from .test_conduct import go, make_project

METHODS = ("submit", "wait", "running", "stop", "close")


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize("kind", [LocalExecutor, DaskExecutor, Idle])
def test_every_executor_has_the_contracts_methods_with_its_signatures(kind: type) -> None:
    for name in METHODS:
        assert _parameters(getattr(kind, name)) == _parameters(getattr(Executor, name)), name
        ours = inspect.signature(getattr(kind, name)).return_annotation
        assert ours == inspect.signature(getattr(Executor, name)).return_annotation, name


def test_the_local_and_idle_executors_are_executors(tmp_path: Path) -> None:
    options = ExecOptions(tmp_path, tmp_path / "runs")
    assert isinstance(LocalExecutor(options, 2), Executor)
    assert LocalExecutor(options, 2).capacity == 2
    assert isinstance(Idle(), Executor) and Idle().capacity == 0
    assert isinstance(vars(DaskExecutor)["capacity"], property)


class InThisProcess:
    """A caller's own executor: runs each instance (script mode) as it is submitted."""

    def __init__(self, options: ExecOptions) -> None:
        self.options = options
        self.done: list[RunResult] = []
        self.closed = False

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, instance: Instance, reason: str) -> None:
        self.done.append(execute_instance(instance, reason, self.options))

    def wait(self, timeout: float | None) -> list[RunResult]:
        done, self.done = self.done, []
        return done

    def running(self) -> dict[str, float]:
        return {result.key: time.monotonic() for result in self.done}

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed = True


def test_an_executor_of_the_callers_own_runs_a_conduct(tmp_path, monkeypatch) -> None:
    root = make_project(tmp_path)
    executor = InThisProcess(ExecOptions(root, root / "runs", mode="script"))
    results, ran = go(root, monkeypatch, executor=executor)
    assert ran == ["model/A", "model/B", "prep/A", "prep/B"]
    assert {r.action for r in results.values()} == {Action.RAN}
    assert {r.status for r in results.values()} == {Status.SUCCESS}
    assert executor.closed  # the conductor closes what it was given, too


def test_an_executor_without_the_contract_is_refused_before_anything_is_written(
        tmp_path, monkeypatch) -> None:
    root = make_project(tmp_path)

    class Half:
        capacity = 1

        def submit(self, instance: Instance, reason: str) -> None: ...

    with pytest.raises(UsageError, match="Half lacks wait, running, stop, close"):
        go(root, monkeypatch, executor=Half())
    with pytest.raises(UsageError, match="unknown executor 'slurm'"):
        go(root, monkeypatch, executor="slurm")
    assert not (root / "runs").exists()
