"""conduct() from wherever an analyst calls it: a script with top-level code and no
``__main__`` guard, ``python -c``, a script piped to ``python -``. Workers never run the
caller's code again: each instance runs once, and the caller's code runs once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
                            stage="count", jobs=2, mode=os.environ["DF_MODE"])
print("done", sorted(r.action.value for r in results))
print("main as it was:", (globals().get("__file__"), globals().get("__spec__")) == before)
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "count.py").write_text(FLOW, encoding="utf-8")
    (tmp_path / "conductor.py").write_text(CONDUCTOR, encoding="utf-8")
    return tmp_path


def _call(project: Path, how: str, mode: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "DF_COUNT": str(project / "count.log"),
           "DF_MODE": mode, "PATH": "/usr/bin:/bin"}
    command = {"script": [sys.executable, "conductor.py"],
               "-c": [sys.executable, "-c", CONDUCTOR],
               "pipe": [sys.executable, "-"]}[how]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=120, input=CONDUCTOR if how == "pipe" else None)


@pytest.mark.parametrize(("how", "mode"), [("script", "script"), ("script", "notebook"),
                                           ("-c", "script"), ("pipe", "script")])
def test_the_callers_code_runs_once_and_each_instance_once(tmp_path: Path, how: str,
                                                          mode: str) -> None:
    project = _project(tmp_path)
    done = _call(project, how, mode)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done ['ran', 'ran', 'ran']" in done.stdout
    assert "Traceback" not in done.stderr
    assert "main as it was: True" in done.stdout
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
