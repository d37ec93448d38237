"""What a terminal shows: the version, and orange that is not red on 16 colours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ductaflow

from .conftest import add_flow, run_cli

FLOW = """\
# %% tags=["parameters"]
config = {}
# %%
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "a")
if config["k"] == "w":
    print("Warning: careful")
if config["k"] == "e":
    raise ValueError("bad")
"""


def test_the_version(tmp_path: Path) -> None:
    done = run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"ductaflow {ductaflow.__version__}"


@pytest.mark.kernel
def test_orange_is_not_red_on_a_16_colour_terminal(project: Path) -> None:
    add_flow(project, "a", FLOW)
    (project / "a.csv").write_text("instance,k\nw,w\ne,e\nok,ok\n", encoding="utf-8")
    done = run_cli("conduct", "a.csv", "--mode", "script", cwd=project,
                   env={"FORCE_COLOR": "1", "TERM": "xterm", "COLORTERM": ""})
    assert done.returncode == 1

    def colour(key: str) -> str:
        found = re.search(r"\x1b\[(\d+)m●\x1b\[0m " + re.escape(key) + " ", done.stdout)
        assert found, done.stdout
        return found.group(1)

    assert (colour("a/ok"), colour("a/w"), colour("a/e")) == ("32", "33", "31")


@pytest.mark.kernel
def test_a_failure_inside_a_build_names_the_flow_that_failed(project: Path) -> None:
    add_flow(project, "inner", FLOW)
    add_flow(project, "build", """\
# %% tags=["parameters"]
config = {}
# %%
import ductaflow
ductaflow.run_notebook("flows/inner.py", {"k": "ok"}, "runs/first")
ductaflow.run_notebook("flows/inner.py", {"k": "e"}, "runs/second")
""", folder="builds")
    (project / "b.csv").write_text("instance,flow\nb1,builds/build.py\n", encoding="utf-8")
    done = run_cli("conduct", "b.csv", cwd=project)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("failed"))
    assert lines[at] == "failed   b/b1: in flows/inner.py: ValueError: bad"
    assert lines[at + 1].split() == ["at:", "flows/inner.py:10"]  # the inner flow's line
    assert lines[at + 2].split() == ["output:", "runs/b/b1/runs/second/inner_execution_output.txt"]
    assert lines[at + 3].split() == ["debug:", "ductaflow", "debug", "runs/b/b1/runs/second"]
    debug = run_cli(*lines[at + 3].split()[2:], cwd=project)  # the command works as shown
    assert debug.returncode == 0 and "last run  ❌ Failed inner" in debug.stdout


SLEEPY = """\
# %% tags=["parameters"]
config = {}
# %%
import time
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "sleepy")
time.sleep(config["seconds"])
"""


def _estimate(stdout: str) -> float:
    found = re.search(r"≈ ([\d.]+) s with", stdout.splitlines()[0])
    assert found, stdout
    return float(found.group(1))


@pytest.mark.kernel
def test_the_plan_says_how_long_it_should_take_from_the_last_durations(project: Path) -> None:
    add_flow(project, "sleepy", SLEEPY)
    (project / "sleepy.csv").write_text("instance,seconds\na,1\nb,1\nc,1\nd,1\n", encoding="utf-8")
    first = run_cli("conduct", "sleepy.csv", "--mode", "script", "--dry-run", cwd=project)
    assert first.returncode == 0 and "≈" not in first.stdout  # no history yet: no guess
    assert run_cli("conduct", "sleepy.csv", "--mode", "script", "--jobs", "2",
                   cwd=project).returncode == 0
    one = _estimate(run_cli("conduct", "sleepy.csv", "--force", "--dry-run", "--jobs", "1",
                            cwd=project).stdout)
    two = _estimate(run_cli("conduct", "sleepy.csv", "--force", "--dry-run", "--jobs", "2",
                            cwd=project).stdout)
    assert 4.0 <= one < 8.0 and two == pytest.approx(one / 2, rel=0.1)
    (project / "sleepy.csv").write_text("instance,seconds\na,1\nb,1\nc,1\nd,1\ne,1\n",
                                   encoding="utf-8")  # new: its flow's median
    shown = run_cli("conduct", "sleepy.csv", "--dry-run", "--jobs", "1", cwd=project).stdout
    assert "1 to run" in shown and one / 4 * 0.8 <= _estimate(shown) <= one / 4 * 1.2
    ran = run_cli("conduct", "sleepy.csv", "--mode", "script", "--force", "--jobs", "2",
                  cwd=project)
    real = float(ran.stdout.strip().splitlines()[-2].split()[-1].rstrip("s"))
    assert _estimate(ran.stdout) <= real * 1.5 + 1  # near the real duration


FAILS_AT = """\
# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "fails")

# %%
def divide(x):
    return 1 / x

total = 0
total += divide(config["x"])
"""


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_a_failure_points_at_the_flow_file_and_line(project: Path, mode: str) -> None:
    add_flow(project, "fails", FAILS_AT)
    (project / "fails.csv").write_text("instance,x\nzero,0\n", encoding="utf-8")
    done = run_cli("conduct", "fails.csv", "--mode", mode, cwd=project)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("failed"))
    assert lines[at + 1].split() == ["at:", "flows/fails.py:11"]  # the line of the .py
    output = (project / "runs/fails/zero/fails_execution_output.txt").read_text(encoding="utf-8")
    assert "at flows/fails.py:11" in output and "ZeroDivisionError" in output
    assert "runpy" not in output and "ductaflow/execution" not in output  # not the flow's
    report = (project / "runs/conductor_status_report.html").read_text(encoding="utf-8")
    assert "ZeroDivisionError: division by zero (flows/fails.py:11)" in report
