"""The whole project in view: results and the report hold every instance of every table
conducted into a runs folder, whatever the last command was; orphans are listed apart."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import ductaflow

from .conftest import add_flow, run_cli

pytestmark = pytest.mark.kernel

FLOW = """\
# %% tags=["parameters"]
config = {}
# %%
from pathlib import Path
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "flow")
Path("out.txt").write_text(str(config.get("k")), encoding="utf-8")
"""


def _csv(project: Path) -> dict[str, dict[str, str]]:
    with open(project / "runs/conductor_results.csv", encoding="utf-8") as handle:
        return {f"{r['stage']}/{r['instance']}": r for r in csv.DictReader(handle)}


def _report_keys(project: Path) -> list[str]:
    html = (project / "runs/conductor_status_report.html").read_text(encoding="utf-8")
    main, _, orphans = html.partition('id="stale"')
    import re

    return re.findall(r'data-key="([^"]+)"', main), re.findall(r'data-key="([^"]+)"', orphans)


def _conduct(project: Path, *tables: str, **kw) -> None:
    ductaflow.conduct([str(project / t) for t in tables], project_root=project, mode="script",
                      progress=False, **kw)


def test_select_and_a_second_table_hide_nothing(project: Path) -> None:
    for name in ("prep", "model", "other"):
        add_flow(project, name, FLOW)
    (project / "prep.csv").write_text("instance,k\nlow,1\nhigh,2\n", encoding="utf-8")
    (project / "model.csv").write_text("instance,k\nlow,runs/prep/low/out.txt\n"
                                       "high,runs/prep/high/out.txt\n", encoding="utf-8")
    (project / "other.csv").write_text("instance,k\nsolo,3\n", encoding="utf-8")
    _conduct(project, "prep.csv", "model.csv")

    _conduct(project, "prep.csv", "model.csv", select=["prep/low"], force=True)
    rows = _csv(project)
    assert list(rows) == ["prep/low", "prep/high", "model/low", "model/high"]
    assert rows["prep/low"]["action"] == "ran"
    assert rows["prep/high"]["reason"] == "not in this conduct (prep.csv)"  # which table
    assert rows["model/high"]["status"] == "success"  # its latest outcome, from disk
    assert _report_keys(project)[0] == list(rows)

    _conduct(project, "other.csv")
    rows = _csv(project)
    assert set(rows) == {"other/solo", "prep/low", "prep/high", "model/low", "model/high"}
    assert rows["other/solo"]["action"] == "ran"
    from openpyxl import load_workbook

    book = load_workbook(project / "runs/conductor_results.xlsx")
    assert sorted(book.sheetnames) == ["model", "other", "prep"]
    assert [c.value for c in book["prep"]["A"]][1:] == ["low", "high"]
    frame = ductaflow.results(runs_dir=project / "runs")
    assert len(frame) == 5

    shown = run_cli("status", cwd=project)
    assert "orphan" not in shown.stdout and "5 instances" in shown.stdout
    assert run_cli("report", cwd=project).returncode == 0
    main, orphans = _report_keys(project)
    assert len(main) == 5 and orphans == []


def test_a_row_deleted_is_an_orphan_listed_apart(project: Path) -> None:
    add_flow(project, "prep", FLOW)
    (project / "prep.csv").write_text("instance,k\nlow,1\nhigh,2\n", encoding="utf-8")
    _conduct(project, "prep.csv")
    (project / "prep.csv").write_text("instance,k\nlow,1\n", encoding="utf-8")
    _conduct(project, "prep.csv")
    assert list(_csv(project)) == ["prep/low"]
    main, orphans = _report_keys(project)
    assert main == ["prep/low"] and orphans == ["prep/high"]
    shown = run_cli("status", cwd=project)
    line = next(x for x in shown.stdout.splitlines() if "prep/high" in x)
    assert "orphan" in line
