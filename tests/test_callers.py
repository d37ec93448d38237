"""conduct() from wherever an analyst calls it: a script with top-level code and no
``__main__`` guard, ``python -c``, a script piped to ``python -``. Workers never run the
caller's code again: each instance runs once, and the caller's code runs once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO

pytestmark = pytest.mark.kernel

FLOW = """\
# %% tags=["parameters"]
config = {}

# %%
import os
from ductaflow import is_notebook_execution, load_cli_config, unpack_config
if not is_notebook_execution():
    config = load_cli_config(None, "count")
vars().update(unpack_config(config, "count", locals()))
with open(os.environ["DF_COUNT"], "a", encoding="utf-8") as log:
    log.write(f"instance {scenario}\\n")
"""

#: A conductor.py as analysts write it: top-level code, no guard.
CONDUCTOR = """\
import os
with open(os.environ["DF_COUNT"], "a", encoding="utf-8") as log:
    log.write("caller\\n")
import pandas as pd
import ductaflow
before = globals().get("__file__"), globals().get("__spec__")
results = ductaflow.conduct(pd.DataFrame({"instance": ["a", "b", "c"],
                                          "scenario": ["a", "b", "c"]}),
                            stage="count", jobs=2, mode=os.environ["DF_MODE"],
                            executor=os.environ.get("DF_EXECUTOR", "local"))
print("done", sorted(r.action.value for r in results))
print("main as it was:", (globals().get("__file__"), globals().get("__spec__")) == before)
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "count.py").write_text(FLOW, encoding="utf-8")
    (tmp_path / "conductor.py").write_text(CONDUCTOR, encoding="utf-8")
    return tmp_path


def _call(project: Path, how: str, mode: str,
          executor: str = "local") -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "DF_COUNT": str(project / "count.log"),
           "DF_MODE": mode, "DF_EXECUTOR": executor, "PATH": "/usr/bin:/bin"}
    command = {"script": [sys.executable, "conductor.py"],
               "-c": [sys.executable, "-c", CONDUCTOR],
               "pipe": [sys.executable, "-"],
               "ipython": [sys.executable, "-m", "IPython", "--quick", "--no-banner",
                           "-c", CONDUCTOR]}[how]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=120, input=CONDUCTOR if how == "pipe" else None)


@pytest.mark.parametrize(("how", "mode"), [("script", "script"), ("script", "notebook"),
                                           ("-c", "script"), ("pipe", "script"),
                                           ("ipython", "script")])
def test_the_callers_code_runs_once_and_each_instance_once(tmp_path: Path, how: str,
                                                          mode: str) -> None:
    project = _project(tmp_path)
    done = _call(project, how, mode)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done ['ran', 'ran', 'ran']" in done.stdout
    assert "summary  ran 3 · skipped 0" in done.stdout  # progress shown, as plain lines
    assert "Traceback" not in done.stderr
    assert "main as it was: True" in done.stdout
    lines = (project / "count.log").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == ["caller", "instance a", "instance b", "instance c"]


#: A conductor script that plans, and runs one flow itself, before it conducts.
PLANS_AND_RUNS = """\
import os
import pandas as pd
import ductaflow
table = pd.DataFrame({"instance": ["a", "b"], "scenario": ["a", "b"]})
print("plan", [d.reason for d in ductaflow.plan(table, stage="count").decisions])
ductaflow.run_notebook("flows/count.py", {"scenario": "solo"}, "runs/solo")
print("ran", sorted(r.action.value for r in ductaflow.conduct(table, stage="count", jobs=2)))
"""


@pytest.mark.parametrize("how", ["-c", "pipe"])
def test_plan_and_run_notebook_from_a_guardless_caller(tmp_path: Path, how: str) -> None:
    project = _project(tmp_path)
    env = {"PYTHONPATH": str(REPO), "DF_COUNT": str(project / "count.log"),
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    command = [sys.executable, "-c", PLANS_AND_RUNS] if how == "-c" else [sys.executable, "-"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=120, input=PLANS_AND_RUNS if how == "pipe" else None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan ['new', 'new']" in done.stdout and "ran ['ran', 'ran']" in done.stdout
    lines = (project / "count.log").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == ["instance a", "instance b", "instance solo"]


BUILD_THAT_CONDUCTS = """\
# %%
import pandas as pd
import ductaflow
ductaflow.conduct(pd.DataFrame({"instance": ["x"], "scenario": ["x"],
                                "flow": ["flows/count.py"]}), stage="inner")
"""


@pytest.mark.parametrize("mode", ["notebook", "script"])
def test_a_build_that_conducts_is_refused_clearly(tmp_path: Path, mode: str) -> None:
    """A conduct inside a flow a conduct runs would wait for its own conductor's lock
    (script mode hung): the flow fails at once, saying why and what to do instead."""
    import ductaflow

    project = _project(tmp_path)
    (project / "flows" / "build.py").write_text(BUILD_THAT_CONDUCTS, encoding="utf-8")
    table = project / "builds.csv"
    table.write_text("instance,flow\nb1,flows/build.py\n", encoding="utf-8")
    results = ductaflow.conduct(str(table), project_root=project, mode=mode, timeout=60,
                                progress=False)
    assert results[0].status is not None and results[0].status.value == "error"
    assert results[0].error.startswith("UsageError: conduct() was called inside a flow "
                                       "that a conduct runs ("), results[0].error
    assert "run_notebook" in results[0].error
    assert not (project / "runs" / "builds" / "b1" / "runs").exists()
    assert not (project / "runs" / "inner").exists()


def test_a_guardless_script_conducts_on_a_dask_local_cluster(tmp_path: Path) -> None:
    """Dask spawns its workers, which would import the caller's script again: they do
    not, so each instance runs once and the caller's code once."""
    pytest.importorskip("distributed")
    project = _project(tmp_path)
    done = _call(project, "script", "script", executor="dask")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done ['ran', 'ran', 'ran']" in done.stdout
    lines = (project / "count.log").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == ["caller", "instance a", "instance b", "instance c"]


def test_what_conduct_returns_is_a_list_that_gives_a_dataframe(tmp_path: Path,
                                                               monkeypatch) -> None:
    import pandas as pd

    import ductaflow

    project = _project(tmp_path)
    (project / "flows" / "bad.py").write_text("raise ValueError('no data')\n", encoding="utf-8")
    monkeypatch.setenv("DF_COUNT", str(project / "count.log"))
    table = pd.DataFrame({"instance": ["a", "bad", "after"], "scenario": ["a", "b", "c"],
                          "flow": ["flows/count.py", "flows/bad.py", "flows/count.py"],
                          "source": ["", "", "runs/count/bad/out.csv"]})
    results = ductaflow.conduct(table, stage="count", project_root=project, mode="script")
    assert isinstance(results, list) and len(results) == 3
    frame = results.to_frame()
    assert list(frame.columns[:7]) == ["stage", "instance", "action", "status", "reason",
                                       "duration_s", "run_dir"]
    rows = frame.set_index("instance")
    assert rows.loc["a", "action"] == "ran" and rows.loc["a", "status"] == "success"
    assert rows.loc["bad", "status"] == "error" and "ValueError" in rows.loc["bad", "error"]
    assert rows.loc["after", "action"] == "blocked" and rows.loc["after", "status"] == ""
    assert rows.loc["a", "run_dir"] == "count/a" and rows.loc["a", "reason"] == "new"
    assert frame[frame.status == "error"].instance.tolist() == ["bad"]


def test_a_notebook_run_by_papermill_conducts_twice_in_one_kernel(tmp_path: Path) -> None:
    """The caller is a notebook kernel: each instance runs once, the second conduct in
    the same kernel skips them all, and no KeyboardInterrupt reaches the kernel."""
    import jupytext

    project = _project(tmp_path)
    source = CONDUCTOR.replace("import os\n", "# %%\nimport os\n", 1) + (
        "\n# %%\nagain = ductaflow.conduct(pd.DataFrame({'instance': ['a', 'b', 'c'],"
        " 'scenario': ['a', 'b', 'c']}), stage='count', jobs=2, mode=os.environ['DF_MODE'])\n"
        "print('again', sorted(r.action.value for r in again))\n")
    notebook = jupytext.reads(source, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    jupytext.write(notebook, project / "conductor.ipynb")
    env = {"PYTHONPATH": str(REPO), "DF_COUNT": str(project / "count.log"),
           "DF_MODE": "script", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "papermill", "conductor.ipynb", "out.ipynb",
                           "--log-output"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "done ['ran', 'ran', 'ran']" in output
    assert "again ['skipped', 'skipped', 'skipped']" in output
    assert "KeyboardInterrupt" not in output
    lines = (project / "count.log").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == ["caller", "instance a", "instance b", "instance c"]


#: The counting flow, made slow by DF_SLEEP; it says when it started in count.log.started.
SLOW_FLOW = FLOW.replace("with open(", """\
import time
open(os.environ["DF_COUNT"] + ".started", "a", encoding="utf-8").write(scenario)
time.sleep(float(os.environ.get("DF_SLEEP", "0")))
with open(""", 1)


class _Kernel:
    """A live Jupyter kernel, driven as a notebook front end drives it: each cell's
    outputs as the front end receives them, and its stop button (interrupt)."""

    def __init__(self, project: Path):
        from jupyter_client.manager import KernelManager

        self.log_path = project / "kernel.log"
        self.log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115
        self.manager = KernelManager(kernel_name="python3")
        env = {**__import__("os").environ, "PYTHONPATH": str(REPO),
               "DF_COUNT": str(project / "count.log")}
        self.manager.start_kernel(cwd=str(project), env=env, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, stop_if: Any = None) -> list[tuple[str, str]]:
        """Run a cell; press stop once ``stop_if()`` is true."""
        import queue
        import time

        msg_id = self.client.execute(code)
        outputs: list[tuple[str, str]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if stop_if is not None and stop_if():
                self.manager.interrupt_kernel()
                stop_if = None
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                return outputs
            if kind == "stream":
                outputs.append((kind, content["text"]))
            elif kind in ("display_data", "update_display_data", "execute_result"):
                shown = content["data"].get("text/plain", "")
                display_id = content.get("transient", {}).get("display_id")
                outputs.append((f"{kind}:{display_id}" if display_id else kind, shown))
            elif kind == "error":
                outputs.append(("error", f"{content['ename']}: {content['evalue']}"))
        raise AssertionError(f"the cell did not end: {outputs}")

    def close(self) -> str:
        """Shut the kernel down; what it logged."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        self.log.close()
        return self.log_path.read_text(encoding="utf-8")


def _text(outputs: list[tuple[str, str]]) -> str:
    return "".join(text for _, text in outputs)


def test_a_jupyter_kernel_shows_live_progress_and_its_stop_button_stops_conduct(
        tmp_path: Path) -> None:
    """In a live kernel: a progress line updated in place and the summary, nothing with
    progress=False; the stop button stops the running instances (ConductInterrupted),
    leaves them not done, restores the kernel's SIGINT handler, and the next conduct
    reruns exactly them; the kernel never logs a KeyboardInterrupt."""
    project = _project(tmp_path)
    (project / "flows" / "count.py").write_text(SLOW_FLOW, encoding="utf-8")
    kernel = _Kernel(project)
    try:
        kernel.run("import os, signal, pandas as pd, ductaflow\n"
                   "before = signal.getsignal(signal.SIGINT)\n"
                   "table = pd.DataFrame({'instance': list('abcd'), 'scenario': list('abcd')})")
        shown = kernel.run("results = ductaflow.conduct(table.head(3), stage='count', jobs=2)")
        lines = [text for kind, text in shown if kind.startswith("update_display_data:")]
        assert lines and lines[-1].startswith("3/3 done"), shown
        assert len({kind.split(":")[1] for kind, _ in shown if ":" in kind}) == 1  # one line
        assert "summary  ran 3" in _text(shown) and "error" not in dict(shown)

        assert kernel.run("again = ductaflow.conduct(table.head(3), stage='count', "
                          "progress=False)\nagain.to_frame().action.tolist()") == [
            ("execute_result", "['skipped', 'skipped', 'skipped']")]

        (project / "count.log.started").unlink()
        stopped = kernel.run("os.environ['DF_SLEEP'] = '30'\n"
                             "ductaflow.conduct(table, stage='count', jobs=2)",
                             stop_if=(project / "count.log.started").exists)
        assert ("error", "ConductInterrupted: interrupted: 1 running stopped and left not "
                         "done (they run next time), 0 finished; results so far in "
                         ".results") in stopped, stopped
        assert "interrupted: running instances stopped" in _text(stopped)
        assert "Traceback" not in _text(stopped)
        assert kernel.run("signal.getsignal(signal.SIGINT) is before") == [
            ("execute_result", "True")]

        rerun = kernel.run("os.environ['DF_SLEEP'] = '0'\n"
                           "last = ductaflow.conduct(table, stage='count', progress=False)\n"
                           "last.to_frame()[['instance', 'action', 'reason']].values.tolist()")
        assert rerun == [("execute_result", "[['a', 'skipped', 'up to date'],\n"
                          " ['b', 'skipped', 'up to date'],\n"
                          " ['c', 'skipped', 'up to date'],\n"
                          " ['d', 'ran', 'last run incomplete']]")], rerun
    finally:
        log = kernel.close()
    assert "KeyboardInterrupt" not in log, log
    lines = (project / "count.log").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == ["instance a", "instance b", "instance c", "instance d"]


def _fork_server_of(parent: int) -> bool:
    """``parent`` has started a multiprocessing fork server (it imports for ~0.7 s
    before it serves: the window a stop button must not hit)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"multiprocessing.forkserver" in cmdline:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_the_stop_button_while_the_fork_server_starts(tmp_path: Path) -> None:
    """Stopped while the fork server imports, before any instance ran: the cell ends in
    ConductInterrupted, with no KeyboardInterrupt traceback from a helper process (they
    start with SIGINT held), and the next conduct runs everything."""
    project = _project(tmp_path)
    # Each instance sleeps: a stop that reaches the kernel late still finds none done.
    (project / "flows" / "count.py").write_text(SLOW_FLOW, encoding="utf-8")
    kernel = _Kernel(project)
    try:
        kernel.run("import os, pandas as pd, ductaflow\n"
                   "table = pd.DataFrame({'instance': list('ab'), 'scenario': list('ab')})")
        pid = kernel.manager.provisioner.process.pid
        assert not _fork_server_of(pid)
        stopped = kernel.run("os.environ['DF_SLEEP'] = '30'\n"
                             "ductaflow.conduct(table, stage='count', jobs=2)",
                             stop_if=lambda: _fork_server_of(pid))
        assert stopped[-1][0] == "error" and "ConductInterrupted" in stopped[-1][1], stopped
        assert "Traceback" not in _text(stopped), stopped
        assert "KeyboardInterrupt" not in _text(stopped), stopped
        again = kernel.run("os.environ['DF_SLEEP'] = '0'\n"
                           "sorted(r.action.value for r in ductaflow.conduct("
                           "table, stage='count', progress=False))")
        assert again == [("execute_result", "['ran', 'ran']")], again
    finally:
        log = kernel.close()
    assert "KeyboardInterrupt" not in log, log
