"""Typos that pass silently and fail late are told before anything runs: plan-time
warnings (one line each, naming file, sheet, row and column; errors with ``--strict``),
disabled rows shown, and flags that would mean something else refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import ductaflow
from ductaflow.errors import UsageError

from .conftest import add_flow, run_cli

FLOW = """\
# %% tags=["parameters"]
config = {}
# %%
print(config)
"""


@pytest.mark.parametrize("flag", [["--timeout", "-1"], ["--timeout", "0"], ["--timeout", "nan"],
                                  ["--retries", "-3"], ["--jobs", "0"], ["--jobs", "two"]])
def test_a_flag_that_would_mean_something_else_is_refused(project: Path, flag) -> None:
    add_flow(project, "act", FLOW)
    (project / "act.csv").write_text("instance,x\na,1\n", encoding="utf-8")
    done = run_cli("conduct", "act.csv", *flag, cwd=project)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and flag[0] in done.stderr, done.stderr
    assert not (project / "runs").exists()


@pytest.mark.parametrize("given", [{"timeout": 0}, {"timeout": -1.5}, {"timeout": float("inf")},
                                   {"retries": -3}, {"retries": 1.5}, {"jobs": 0},
                                   {"jobs": True}])
def test_the_api_refuses_them_too(project: Path, given: dict) -> None:
    add_flow(project, "act", FLOW)
    (project / "act.csv").write_text("instance,x\na,1\n", encoding="utf-8")
    with pytest.raises(UsageError, match=next(iter(given))):
        ductaflow.conduct(str(project / "act.csv"), project_root=project, progress=False,
                          **given)
    assert not (project / "runs").exists()
