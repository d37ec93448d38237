"""Fan-in: a cell naming every instance of a stage with a glob over instance names
(``runs/model/*/demand.csv``) waits for each matching instance the tables define, hands
the flow their paths in table order, and reruns when that set changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import ductaflow
from ductaflow.errors import PlanError

from .conftest import add_flow, run_cli

MODEL = """\
# %% tags=["parameters"]
config = {}

# %%
from pathlib import Path
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "model")
Path("demand.csv").write_text(f"demand\\n{config['demand']}\\n", encoding="utf-8")
"""

SUMMARY = """\
# %% tags=["parameters"]
config = {}

# %%
from pathlib import Path
import ductaflow
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "summary")
parts = config["parts"]
values = [int(Path(p).read_text(encoding="utf-8").split()[1]) for p in parts]
print("read", parts)
ductaflow.record(total=sum(values), count=len(values))
"""


def _tables(project: Path, model_rows: str, summary_rows: str = "all,runs/model/*/demand.csv"
            ) -> list[str]:
    (project / "model.csv").write_text("instance,demand,enabled\n" + model_rows,
                                       encoding="utf-8")
    (project / "summary.csv").write_text("instance,parts\n" + summary_rows + "\n",
                                         encoding="utf-8")
    return [str(project / "model.csv"), str(project / "summary.csv")]


def _plan(project: Path, tables: list[str]) -> dict[str, ductaflow.Decision]:
    planned = ductaflow.plan(tables, project_root=project)
    return {d.instance.key: d for d in planned.decisions}


def _flows(project: Path) -> None:
    add_flow(project, "model", MODEL)
    add_flow(project, "summary", SUMMARY)


# --- planning: no kernels ----------------------------------------------------------------


def test_a_glob_stands_for_the_defined_instances_in_table_order(project: Path) -> None:
    _flows(project)
    (project / "runs" / "model" / "stray").mkdir(parents=True)  # a folder no table defines
    tables = _tables(project, "west,1,1\neast_eff,2,1\noff_eff,9,0\nnorth_eff,3,1\n",
                     "all,runs/model/*/demand.csv\neff,runs/model/*_eff/demand.csv")
    plan = _plan(project, tables)
    every, eff = plan["summary/all"].instance, plan["summary/eff"].instance
    assert every.config["parts"] == ["../../model/west/demand.csv",
                                     "../../model/east_eff/demand.csv",
                                     "../../model/north_eff/demand.csv"]
    assert every.depends_on == ("model/west", "model/east_eff", "model/north_eff")
    assert eff.config["parts"] == ["../../model/east_eff/demand.csv",
                                   "../../model/north_eff/demand.csv"]
    ordered = list(plan)
    assert ordered.index("summary/all") > ordered.index("model/north_eff")


def test_globs_in_lists_objects_base_configs_and_absolute_paths(project: Path) -> None:
    _flows(project)
    (project / "config" / "flows" / "summary.json").write_text(
        json.dumps({"extra": {"folders": "runs/model/?ast"}}), encoding="utf-8")
    runs = (project / "runs").resolve().as_posix()
    (project / "model.csv").write_text("instance,demand\nwest,1\neast,2\n", encoding="utf-8")
    (project / "summary.csv").write_text(
        "instance,parts,absolute\n"
        f'all,"[""runs/model/w*/demand.csv"", ""data/x.csv"", ""runs/model/e*/demand.csv""]",'
        f"{runs}/model/*/demand.csv\n", encoding="utf-8")
    config = _plan(project, [str(project / "model.csv"),
                             str(project / "summary.csv")])["summary/all"].instance.config
    assert config["parts"] == ["../../model/west/demand.csv", "data/x.csv",
                               "../../model/east/demand.csv"]  # spliced: one flat list
    assert config["absolute"] == [f"{runs}/model/west/demand.csv",
                                  f"{runs}/model/east/demand.csv"]
    assert config["extra"]["folders"] == ["../../model/east"]


def test_a_row_never_waits_for_itself_and_brackets_are_classes(project: Path) -> None:
    add_flow(project, "model", MODEL)
    (project / "model.csv").write_text(
        "instance,demand,inputs\na,1,\nb,2,\nc[1],3,\nall,0,runs/model/*/demand.csv\n"
        "ab,0,runs/model/[ab]/demand.csv\nliteral,0,runs/model/c[1]/demand.csv\n",
        encoding="utf-8")
    plan = _plan(project, [str(project / "model.csv")])
    assert plan["model/all"].instance.depends_on == ("model/a", "model/b", "model/c[1]",
                                                     "model/ab", "model/literal")
    assert plan["model/ab"].instance.config["inputs"] == ["../../model/a/demand.csv",
                                                          "../../model/b/demand.csv"]
    assert plan["model/literal"].instance.config["inputs"] == "../../model/c[1]/demand.csv"


@pytest.mark.parametrize(("cell", "message"), [
    ("runs/model/*_x/demand.csv", "runs/model/*_x/demand.csv matches no instance"),
    ("runs/model/off*/demand.csv", "matches no instance"),  # only a disabled row matches
    ("runs/model/stray*/demand.csv", "matches no instance"),  # only a stray folder matches
    ("runs/nowhere/*/demand.csv", "no table defines stage 'nowhere'"),
    ("runs/*/west/demand.csv", "only the instance name may be a glob"),
    ("runs/model/west/*.csv", "only the instance name may be a glob"),
])
def test_a_glob_that_cannot_match_is_refused_at_plan_time(project: Path, cell: str,
                                                          message: str) -> None:
    _flows(project)
    (project / "runs" / "model" / "stray_one").mkdir(parents=True)
    tables = _tables(project, "west,1,1\noff,2,0\n", f"all,{cell}")
    with pytest.raises(PlanError) as caught:
        _plan(project, tables)
    text = str(caught.value)
    assert message in text
    assert "summary.csv, row 2, column 2 (parts)" in text


def test_the_cli_refuses_it_in_one_line_and_writes_nothing(project: Path) -> None:
    _flows(project)
    _tables(project, "west,1,1\n", "all,runs/model/*_eff/demand.csv")
    done = run_cli("conduct", "model.csv", "summary.csv", cwd=project)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "summary.csv, row 2, column 2 (parts)" in done.stderr
    assert "stage 'model' defines west" in done.stderr
    assert not (project / "runs").exists()


def test_the_dry_run_shows_what_a_glob_stands_for(project: Path) -> None:
    _flows(project)
    _tables(project, "west,1,1\neast,2,1\n")
    done = run_cli("conduct", "model.csv", "summary.csv", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr
    assert ("fan-in runs/model/*/demand.csv: 2 instances (model/west, model/east)"
            in done.stdout)


# --- running: real flows ------------------------------------------------------------------


def _conduct(project: Path, tables: list[str], mode: str = "script") -> dict[str, str]:
    results = ductaflow.conduct(tables, project_root=project, mode=mode, progress=False)
    assert all(r.status == "success" for r in results), [r.error for r in results]
    return {r.key: r.reason for r in results if r.action == "ran"}


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_a_fan_in_row_reads_every_match_and_reruns_only_when_the_set_changes(
        project: Path, mode: str) -> None:
    _flows(project)
    tables = _tables(project, "west,1,1\neast,2,1\n")
    _conduct(project, tables, mode)
    frame = ductaflow.results("summary", runs_dir=project / "runs")
    assert frame.loc[0, "total"] == 3 and frame.loc[0, "count"] == 2

    assert _conduct(project, tables, mode) == {}  # nothing changed: nothing runs
    tables = _tables(project, "east,2,1\nwest,1,1\n")  # rows reordered: the same set
    assert _conduct(project, tables, mode) == {}

    tables = _tables(project, "west,1,1\neast,2,1\nnorth,4,1\n")  # a row added upstream
    ran = _conduct(project, tables, mode)
    assert set(ran) == {"model/north", "summary/all"}
    assert "inputs changed: + runs/model/north/demand.csv" in ran["summary/all"]
    assert ductaflow.results("summary", runs_dir=project / "runs").loc[0, "total"] == 7

    tables = _tables(project, "west,1,1\neast,2,0\nnorth,4,1\n")  # a row disabled
    ran = _conduct(project, tables, mode)
    assert ran == {"summary/all": "inputs changed: - runs/model/east/demand.csv"}
    assert ductaflow.results("summary", runs_dir=project / "runs").loc[0, "total"] == 5

    tables = _tables(project, "west,1,1\neast,2,0\nnorth,5,1\n")  # an upstream reruns
    ran = _conduct(project, tables, mode)
    assert ran["summary/all"] == "upstream ran: model/north"


@pytest.mark.kernel
def test_a_missing_upstream_output_reruns_its_producer_and_the_same_bytes_stop_there(
        project: Path) -> None:
    _flows(project)
    tables = _tables(project, "west,1,1\neast,2,1\n")
    _conduct(project, tables)
    os.remove(project / "runs" / "model" / "east" / "demand.csv")
    plan = _plan(project, tables)
    assert plan["summary/all"].reason == "upstream ran: model/east"
    results = {r.key: r for r in ductaflow.conduct(tables, project_root=project, mode="script",
                                                    progress=False)}
    assert results["model/east"].reason == "missing output: runs/model/east/demand.csv"
    assert results["model/east"].action == "ran"
    summary = results["summary/all"]  # east wrote the same bytes again: early cutoff
    assert summary.action == "skipped" and summary.status == "success"
    assert summary.reason == "up to date (model/east ran; what this reads is unchanged)"
    assert _plan(project, tables)["summary/all"].reason == "up to date"
