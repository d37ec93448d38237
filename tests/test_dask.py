"""The Dask executor on a LocalCluster and on a real scheduler with two worker processes.

Flows write the worker's ``DUCTAFLOW_TEST_WORKER`` (set only on the workers) into
their folder, so a test can tell where they ran. Clusters started here are killed at
the end of the test, whatever happens.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ductaflow.conductor import conduct
from ductaflow.errors import UsageError
from ductaflow.execution import dask_executor
from ductaflow.execution.dask_executor import (
    DaskExecutor,
    earlier_attempt,
    run_on_worker,
    save_attempt,
)
from ductaflow.execution.instance import ExecOptions
from ductaflow.model import Action, RunResult, Status
from ductaflow.planning.planner import plan
from ductaflow.run_folder import records
from ductaflow.run_folder.files import STATE_DIR

from .conftest import REPO, add_flow, run_cli

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
pytestmark = pytest.mark.dask

WHERE = """\
# %% tags=["parameters"]
config = {}

# %%
import os
import time

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Where")
worker = os.environ.get("DUCTAFLOW_TEST_WORKER", "conductor")
print(f"{config['name']} on {worker}", flush=True)
with open("attempts.log", "a") as f:
    f.write(worker + "\\n")
time.sleep(config.get("sleep", 0))
if config.get("fail"):
    raise ValueError("asked to fail")
print("finishing", flush=True)
with open("finished.log", "a") as f:
    f.write(worker + "\\n")
"""

USE = """\
# %% tags=["parameters"]
config = {}

# %%
from pathlib import Path

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Use")
print("upstream ran on", Path(config["source"]).read_text().strip())
"""


def write_project(project: Path, rows: list[str], use: list[str] = ()) -> list[Path]:
    """flows/where.py and flows/use.py, ``where.csv`` from ``rows``, ``use.csv`` from
    ``use`` (names of where instances to read from)."""
    add_flow(project, "where", WHERE)
    add_flow(project, "use", USE)
    tables = [project / "where.csv"]
    tables[0].write_text("instance,name,sleep,fail\n" + "\n".join(rows) + "\n", encoding="utf-8")
    if use:
        tables.append(project / "use.csv")
        lines = [f"{n},runs/where/{n}/finished.log" for n in use]
        tables[1].write_text("instance,source\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return tables


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- a real scheduler and workers ------------------------------------------------------


@dataclass
class Cluster:
    address: str
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def kill(self, name: str) -> None:
        """Kill a worker as a lost node would die: nanny, worker process and all."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait(10)


@contextlib.contextmanager
def dask_cluster(folder: Path, names: tuple[str, ...] = ("w1", "w2")) -> Iterator[Cluster]:
    """``dask scheduler`` and one ``dask worker`` per name on 127.0.0.1, random ports."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DUCTAFLOW_TEST_WORKER", None)
    started: list[subprocess.Popen] = []

    def start(module: str, *args: str, log: str, **extra: str) -> subprocess.Popen:
        with open(folder / log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}", *args],
                                    env={**env, **extra}, stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        return proc

    try:
        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
              "--scheduler-file", str(scheduler_file), log="scheduler.log")
        until(scheduler_file.exists, 30, "the scheduler")
        cluster = Cluster(json.loads(scheduler_file.read_text(encoding="utf-8"))["address"])
        for name in names:
            cluster.workers[name] = start(
                "dask_worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                "--host", "127.0.0.1", "--no-dashboard", "--name", name,
                "--death-timeout", "30", log=f"{name}.log", DUCTAFLOW_TEST_WORKER=name)
        with distributed.Client(cluster.address, set_as_default=False) as client:
            client.wait_for_workers(len(names), timeout=60)
        yield cluster
    finally:
        for proc in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dask_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def by_key(results: list[RunResult]) -> dict[str, RunResult]:
    return {r.key: r for r in results}


# --- tests -----------------------------------------------------------------------------


def test_cluster_runs_in_workers_skips_on_rerun_and_blocks_dependents(
        cluster: Cluster, project: Path) -> None:
    tables = write_project(project, ["a,A,0,", "b,B,0,", "bad,Bad,0,true"], use=["a", "bad"])
    first = by_key(conduct(tables, project_root=project, executor="dask",
                           scheduler=cluster.address, mode="script"))
    runs = project / "runs"
    for key in ("where/a", "where/b", "use/a"):
        assert (first[key].action, first[key].status) == (Action.RAN, Status.SUCCESS), first[key]
    assert first["where/bad"].action is Action.FAILED
    assert first["where/bad"].error == "ValueError: asked to fail"
    assert first["use/bad"].action is Action.BLOCKED and "where/bad" in first["use/bad"].reason
    ran_on = {w for n in ("a", "b", "bad") for w in lines(runs / "where" / n / "attempts.log")}
    assert ran_on and ran_on <= {"w1", "w2"}  # never in the conductor's own process
    assert "upstream ran on w" in (runs / "use/a/use_execution_output.txt").read_text("utf-8")

    again = run_cli("conduct", "where.csv", "use.csv", "--executor", "dask", "--scheduler",
                    cluster.address, "--mode", "script", cwd=project)
    assert again.returncode == 1, again.stderr
    with open(runs / "conductor_results.csv", encoding="utf-8") as handle:
        actions = {f"{r['stage']}/{r['instance']}": r["action"] for r in csv.DictReader(handle)}
    assert actions == {"where/a": "skipped", "where/b": "skipped", "where/bad": "failed",
                       "use/a": "skipped", "use/bad": "blocked"}
    assert len(lines(runs / "where/a/attempts.log")) == 1


def test_project_not_visible_on_the_worker_is_refused_up_front(cluster: Cluster,
                                                                project: Path) -> None:
    options = ExecOptions(project, project / "runs", "script")
    (project / "runs").mkdir()
    with distributed.Client(cluster.address, set_as_default=False) as client:
        with pytest.raises(UsageError) as info:
            DaskExecutor(options, 1, client=client, flows=["flows/gone.py"])
        message = str(info.value)
        assert str(project / "flows/gone.py") in message
        assert "Dask worker tcp://127.0.0.1:" in message and "shared filesystem" in message
        assert len(client.nthreads()) == 2  # a Client we were given is never closed


def test_a_scheduler_that_is_not_there_is_a_usage_error(project: Path) -> None:
    options = ExecOptions(project, project / "runs", "script")
    for address in ("tcp://127.0.0.1:1", "nonsense://here"):
        with pytest.raises(UsageError, match="cannot connect to the Dask scheduler"):
            DaskExecutor(options, 1, scheduler=address)


def test_a_second_attempt_of_one_submission_does_not_run_the_flow_again(
        cluster: Cluster, project: Path) -> None:
    tables = write_project(project, ["a,A,0,"])
    instance = plan(tables, project_root=project).decisions[0].instance
    options = ExecOptions(project, project / "runs", "script")
    (project / "runs").mkdir()
    with distributed.Client(cluster.address, set_as_default=False) as client:
        stop = distributed.Event("ductaflow-test-stop", client=client)
        attempts = [client.submit(run_on_worker, instance, "new", options, "token-1", stop.name,
                                  pure=False).result() for _ in range(2)]
    assert attempts[0] == attempts[1] and attempts[0].action is Action.RAN
    run_dir = project / "runs/where/a"
    assert len(lines(run_dir / "attempts.log")) == 1
    assert len(lines(run_dir / "finished.log")) == 1


def test_stop_kills_running_flows_and_leaves_them_not_done(cluster: Cluster,
                                                           project: Path) -> None:
    tables = write_project(project, ["a,A,60,", "b,B,60,"])
    decisions = plan(tables, project_root=project).decisions
    options = ExecOptions(project, project / "runs", "script")
    (project / "runs").mkdir()
    executor = DaskExecutor(options, 2, scheduler=cluster.address)
    try:
        assert executor.capacity == 2
        for decision in decisions:
            executor.submit(decision.instance, decision.reason)
        until(lambda: all((project / "runs/where" / n / "attempts.log").exists()
                          for n in ("a", "b")), 30, "both flows to start")
        began = time.monotonic()
        assert sorted(executor.stop()) == ["where/a", "where/b"]
        assert time.monotonic() - began < 10 and not executor.running()
    finally:
        executor.close()
    for name in ("a", "b"):
        run_dir = project / "runs/where" / name
        assert records.is_started(run_dir) and records.read_record(run_dir) is None
        assert not (run_dir / "finished.log").exists()
    again = plan(tables, project_root=project)
    assert [d.reason for d in again.decisions] == ["last run incomplete"] * 2


def test_killing_a_worker_mid_run_loses_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tables = write_project(project, [f"i{n},I{n},2," for n in range(3)])
    runs = project / "runs/where"

    def victim() -> str | None:
        for folder in sorted(runs.glob("i*")):
            if "k2" in lines(folder / "attempts.log") and not (folder / "finished.log").exists():
                return folder.name
        return None

    with dask_cluster(tmp_path_factory.mktemp("killed"), ("k1", "k2")) as killed:
        outcome: dict[str, Any] = {}

        def first_conduct() -> None:
            try:
                outcome["results"] = conduct(tables, project_root=project, executor="dask",
                                             scheduler=killed.address, mode="script")
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test below
                outcome["error"] = exc

        thread = threading.Thread(target=first_conduct)
        thread.start()
        lost = until(victim, 30, "an instance running on k2")
        killed.kill("k2")
        thread.join(120)
        assert "error" not in outcome, outcome.get("error")
        first = by_key(outcome["results"])
        for key, result in first.items():
            run_dir = project / "runs" / key
            if result.action is Action.RAN:  # done: exactly once, with its record
                assert result.status is Status.SUCCESS
                assert records.read_record(run_dir) is not None
                assert len(lines(run_dir / "finished.log")) == 1
            else:  # left not done, for the next conduct
                assert result.action is Action.FAILED and result.error.startswith("WorkerDied")
                assert records.read_record(run_dir) is None
        assert lines(runs / lost / "attempts.log")[0] == "k2"
        second = by_key(conduct(tables, project_root=project, executor="dask",
                                scheduler=killed.address, mode="script"))
        for key, result in second.items():
            expected = Action.SKIPPED if first[key].action is Action.RAN else Action.RAN
            assert result.action is expected, result
            assert records.read_record(project / "runs" / key)["status"] == "success"
            assert len(lines(project / "runs" / key / "finished.log")) == 1
        assert lines(runs / lost / "finished.log") == ["k1"]  # resubmitted, finished elsewhere

        # The last worker goes too: what was outstanding fails, and stays not done.
        monkeypatch.setattr(dask_executor, "WORKER_WAIT_S", 1.0)
        instance = plan(tables, project_root=project, force=True).decisions[0].instance
        attempts = runs / instance.name / "attempts.log"
        before = len(lines(attempts))
        executor = DaskExecutor(ExecOptions(project, project / "runs", "script"), 1,
                                scheduler=killed.address)
        try:
            executor.submit(instance, "forced")
            until(lambda: len(lines(attempts)) > before, 30, "the flow to start on k1")
            killed.kill("k1")
            given_up = until(lambda: executor.wait(0.5), 30, "the instance to be given up")
        finally:
            executor.close()
        assert [r.error for r in given_up] == ["WorkerDied: no Dask worker for 1 s"]
        assert records.read_record(runs / instance.name) is None


def test_notebook_mode_on_a_local_cluster(project: Path) -> None:
    tables = write_project(project, ["a,A,0,", "b,B,0,"])
    with dask.config.set({"distributed.nanny.environ": {"DUCTAFLOW_TEST_WORKER": "lc"}}):
        results = conduct(tables, project_root=project, executor="dask", jobs=2)
    assert [(r.action, r.status) for r in results] == [(Action.RAN, Status.SUCCESS)] * 2
    for name in ("a", "b"):
        run_dir = project / "runs/where" / name
        assert lines(run_dir / "finished.log") == ["lc"]
        assert (run_dir / "where.ipynb").is_file()


def test_without_distributed_the_dask_executor_exits_2_with_the_install_hint(
        project: Path) -> None:
    write_project(project, ["a,A,0,"])
    code = ("import sys; sys.modules['distributed'] = None; "
            "from ductaflow.cli.commands import main; "
            "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "conduct", "where.csv", "--executor",
                           "dask", "--mode", "script"], cwd=project, capture_output=True,
                          text=True, encoding="utf-8", timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert 'pip install "ductaflow[dask]"' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (project / "runs/where").exists()


def test_a_finished_attempt_is_found_only_by_its_own_submission(tmp_path: Path) -> None:
    run_dir = tmp_path / "where/a"
    result = RunResult(stage="where", instance="a", action=Action.RAN, status=Status.WARNING,
                       reason="new", duration_s=1.5, run_dir="where/a", flow="flows/where.py")
    (run_dir / STATE_DIR).mkdir(parents=True)
    save_attempt(run_dir, "token-1", result)
    assert earlier_attempt(run_dir, "token-1") is None  # no record: it did not finish
    records.write_record(run_dir, records.new_record(
        stage="where", instance="a", flow="flows/where.py", config={}, code={}, inputs={},
        upstream={}, status="warning", started_at="", ended_at="", duration_s=1.5))
    assert earlier_attempt(run_dir, "token-1") == result
    assert earlier_attempt(run_dir, "token-2") is None



def test_the_slurm_example_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("slurm_cluster",
                                                  REPO / "examples/slurm_cluster.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # importable without dask-jobqueue
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    assert example.main(["scenarios.csv"]) == 2
    assert 'pip install "ductaflow[dask]" dask-jobqueue' in capsys.readouterr().err
