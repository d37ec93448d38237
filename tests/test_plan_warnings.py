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


def _typos(project: Path) -> list[str]:
    add_flow(project, "model", FLOW)
    add_flow(project, "sum", FLOW)
    (project / "config/flows/model.json").write_text(
        '{"growth": 0.01, "households_file": "data/households.csv", "opts": {"a": 1}}',
        encoding="utf-8")
    (project / "data/households.csv").write_text("h\n", encoding="utf-8")
    (project / "model.csv").write_text(
        "instance,grwoth,households_file,opts.a,weights,label,enabled\n"
        'low,"0,005",data/househols.csv,2,"[1, 2",x,\n'
        'high,0.02,data/households.csv,3,"[1,2]",{{y}},\n'
        "off,0.03,,,,,FALSE\n", encoding="utf-8")
    (project / "sum.csv").write_text("instance,src\nx,runs/model/off/out.csv\n",
                                     encoding="utf-8")
    (project / "runs/model/off").mkdir(parents=True)
    return [str(project / "model.csv"), str(project / "sum.csv")]


def test_each_probable_typo_is_one_warning_naming_its_cell(project: Path) -> None:
    tables = _typos(project)
    shown = [str(w).replace(f"{project}/", "")
             for w in ductaflow.plan(tables, project_root=project).warnings]
    assert shown == [
        "model.csv, row 1, column 2 (grwoth): column 'grwoth' is not a key of "
        "config/flows/model.json (did you mean 'growth'?)",
        "model.csv, row 1, column 5 (weights): column 'weights' is not a key of "
        "config/flows/model.json (the flow gets it as a new key)",
        "model.csv, row 1, column 6 (label): column 'label' is not a key of "
        "config/flows/model.json (the flow gets it as a new key)",
        "model.csv, row 2, column 2 (grwoth): '0,005' is text: a decimal comma, where the "
        "column's other cells are numbers (write 0.005)",
        "model.csv, row 2, column 5 (weights): '[1, 2' starts like JSON but does not parse "
        "(Expecting ',' delimiter: line 1 column 6 (char 5)) (the flow gets it as text)",
        "model.csv, row 2, column 3 (households_file): data/househols.csv does not exist "
        "(its folder does) (did you mean data/households.csv?)",
        "sum.csv, row 2, column 2 (src): runs/model/off/out.csv is in model/off, whose row "
        "is disabled: it reads that instance's last outputs (enable the row (model.csv, "
        "row 4) to make them again)",
    ]


def test_a_clean_table_has_no_warning(project: Path) -> None:
    add_flow(project, "model", FLOW)
    (project / "config/flows/model.json").write_text('{"growth": 0.01, "tag": "a"}',
                                                     encoding="utf-8")
    (project / "model.csv").write_text(
        'instance,growth,tag,flow\nlow,0.005,{instance}_x,flows/model.py\n'
        'mid,0.01,"1,000",flows/model.py\n'  # a text column: a comma is just text
        'high,0.02,[a,flows/model.py\n', encoding="utf-8")
    warnings = ductaflow.plan(str(project / "model.csv"), project_root=project).warnings
    assert [str(w).replace(f"{project}/", "") for w in warnings] == [
        "model.csv, row 4, column 3 (tag): '[a' starts like JSON but does not parse "
        "(Expecting value: line 1 column 2 (char 1)) (the flow gets it as text)"]


def test_dry_run_and_conduct_show_them_and_the_disabled_rows(project: Path) -> None:
    _typos(project)
    done = run_cli("conduct", "model.csv", "sum.csv", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("warning: ") for line in lines) == 7
    assert any(line.split() == ["model/off", "disabled"] for line in lines)
    for _ in range(2):  # the second from the plan cache: the warnings come with it
        done = run_cli("conduct", "model.csv", "sum.csv", "--mode", "script", cwd=project)
        assert done.returncode == 0, done.stderr
        assert sum(line.startswith("warning: ") for line in done.stdout.splitlines()) == 7


@pytest.mark.parametrize("how", ["flag", "pyproject", "api"])
def test_strict_makes_them_errors_and_writes_nothing(project: Path, how: str) -> None:
    tables = _typos(project)
    if how == "api":
        with pytest.raises(ductaflow.DuctaflowError, match="grwoth.*6 more warnings"):
            ductaflow.conduct(tables, project_root=project, strict=True, progress=False)
    else:
        if how == "pyproject":
            (project / "pyproject.toml").write_text("[tool.ductaflow]\nstrict = true\n",
                                                    encoding="utf-8")
        flags = ["--strict"] if how == "flag" else []
        for extra in ([], ["--dry-run"]):
            done = run_cli("conduct", "model.csv", "sum.csv", *flags, *extra, cwd=project)
            assert done.returncode == 2, done.stdout
            assert done.stderr.count("\n") == 1 and "strict" in done.stderr
    assert sorted(p.name for p in (project / "runs").iterdir()) == ["model"]  # ours
    assert ductaflow.plan(tables, project_root=project, strict=False).warnings
