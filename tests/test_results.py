"""Results across scenarios: flows record values (``ductaflow.record``); each stage's
results table (parameters as typed, status, recorded values) reaches the workbook, a
CSV per stage, ``ductaflow.results`` and ``ductaflow results``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ductaflow
from ductaflow.errors import UsageError

from .conftest import add_flow, run_cli

pytestmark = pytest.mark.kernel

MODEL = """\
# %% tags=["parameters"]
config = {}

# %%
import datetime
import ductaflow
from ductaflow import is_notebook_execution, load_cli_config, unpack_config
if not is_notebook_execution():
    config = load_cli_config(None, "model")
vars().update(unpack_config(config, "model", locals()))
ductaflow.record(npv=growth * 1000, npv_text="first", label=label,
                 when=datetime.date(2026, 1, 2), missing=float("nan"))
ductaflow.record({"peak load": 812, "npv_text": "last"})
if scenario == "bad":
    raise ValueError("boom")
"""

TABLE = ("instance,scenario,growth,label\n"
         "low,low,0.01,plain\n"
         'high,high,0.03,"=HYPERLINK(""http://x"")"\n'
         "bad,bad,0.02,plain\n")


def _project(project: Path, mode: str) -> Path:
    add_flow(project, "model", MODEL)
    (project / "model.csv").write_text(TABLE, encoding="utf-8")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode=mode,
                      progress=False)
    return project


@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_recorded_values_reach_the_dataframe_csv_and_workbook(project: Path,
                                                              mode: str) -> None:
    _project(project, mode)
    runs = project / "runs"
    kept = json.loads((runs / "model" / "low" / "model_results.json").read_text("utf-8"))
    assert kept == {"npv": 10.0, "npv_text": "last", "label": "plain", "when": "2026-01-02",
                    "missing": None, "peak load": 812}

    frame = ductaflow.results("model", runs_dir=runs)
    assert list(frame.columns) == ["instance", "scenario", "growth", "label", "status", "npv",
                                   "npv_text", "label (recorded)", "when", "missing",
                                   "peak load"]
    rows = frame.set_index("instance")
    assert rows.loc["high", "npv"] == 30.0 and rows.loc["high", "peak load"] == 812
    assert rows.loc["low", "status"] == "success"
    assert rows.loc["bad", "status"] == "error" and rows.loc["bad", "npv"] == 20.0  # kept

    text = (runs / "conductor_results_model.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and '\n"=HYPERLINK' not in text

    from openpyxl import load_workbook

    sheet = load_workbook(runs / "conductor_results.xlsx")["model"]
    headers = [c.value for c in sheet[1]]
    by_instance = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    npv = headers.index("npv")
    assert by_instance["high"][npv].value == 30.0  # a number, not text
    assert by_instance["bad"][npv].font.i  # recorded by a failed run: italic
    assert not by_instance["low"][npv].font.i
    recorded_label = by_instance["high"][headers.index("label (recorded)")]
    assert recorded_label.value.startswith("=HYPERLINK") and recorded_label.data_type == "s"


def test_a_rerun_forgets_what_the_earlier_run_recorded(project: Path) -> None:
    add_flow(project, "model", MODEL.replace('ductaflow.record({"peak load": 812, '
                                             '"npv_text": "last"})',
                                             'if growth > 0.02: ductaflow.record(extra=1)'))
    (project / "model.csv").write_text(TABLE, encoding="utf-8")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode="script",
                      progress=False)
    assert ductaflow.results("model", runs_dir=project / "runs").set_index(
        "instance").loc["high", "extra"] == 1
    (project / "model.csv").write_text(TABLE.replace("0.03", "0.015"), encoding="utf-8")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode="script",
                      progress=False)
    frame = ductaflow.results("model", runs_dir=project / "runs")
    assert "extra" not in frame.columns
    assert frame.set_index("instance").loc["high", "npv"] == 15.0


def test_a_value_that_cannot_be_recorded_fails_the_flow_clearly(project: Path) -> None:
    add_flow(project, "model", MODEL.replace("missing=float(\"nan\")", "missing={1, 2}"))
    (project / "model.csv").write_text(TABLE, encoding="utf-8")
    results = ductaflow.conduct(str(project / "model.csv"), project_root=project,
                                mode="script", progress=False)
    assert all(r.status.value == "error" for r in results)
    assert results[0].error.startswith("RecordError: record(missing=...): a set cannot be "
                                       "recorded"), results[0].error
    assert not (project / "runs" / "model" / "low" / "model_results.json").exists()


def test_a_builds_flows_record_into_the_builds_row(project: Path) -> None:
    add_flow(project, "model", MODEL)
    add_flow(project, "build", """\
# %%
import ductaflow
ductaflow.run_notebook("flows/model.py", {"model": {"scenario": "inner", "growth": 0.5,
                       "label": "in"}}, "step_model")
ductaflow.record(build_note="done", npv=1)
""", folder="builds")
    (project / "builds.csv").write_text("instance,flow\nb1,builds/build.py\n", encoding="utf-8")
    ductaflow.conduct(str(project / "builds.csv"), project_root=project, progress=False)
    row = ductaflow.results("builds", runs_dir=project / "runs").iloc[0]
    assert row["status"] == "success" and row["build_note"] == "done"
    assert row["npv"] == 1  # the build's own value wins over its flow's
    assert row["peak load"] == 812 and row["label"] == "in"


def test_only_instances_the_tables_define_count(project: Path) -> None:
    _project(project, "script")
    (project / "model.csv").write_text(TABLE.replace("bad,bad,0.02,plain\n", ""),
                                       encoding="utf-8")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode="script",
                      progress=False)
    frame = ductaflow.results(runs_dir=project / "runs")
    assert frame.instance.tolist() == ["low", "high"] and frame.stage.tolist() == ["model"] * 2
    assert frame.attrs["left_out"] == ["model/bad"]
    with pytest.raises(UsageError, match="no results for stage nope"):
        ductaflow.results("nope", runs_dir=project / "runs")


def test_the_results_command(project: Path) -> None:
    _project(project, "script")
    shown = run_cli("results", "model", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "instance,scenario,growth,label,status,npv,npv_text,label (recorded)," \
                       "when,missing,peak load"
    assert lines[1] == "low,low,0.01,plain,success,10.0,last,plain,2026-01-02,,812"
    as_json = json.loads(run_cli("results", "--format", "json", cwd=project).stdout)
    assert as_json[0]["stage"] == "model" and as_json[0]["rows"][2]["status"] == "error"
    written = run_cli("results", "-o", "out.xlsx", cwd=project)
    assert written.returncode == 0 and (project / "out.xlsx").stat().st_size > 0
    bad = run_cli("results", "nope", cwd=project)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: no results for stage nope in runs (conducted stages: model)"]


def test_record_outside_a_run_folder_saves_nothing(tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    monkeypatch.chdir(tmp_path)
    ductaflow.record(npv=1.5)
    assert "saved nothing" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ductaflow.RecordError):
        ductaflow.record(bad=object())


def test_the_parameters_are_shown_rendered(project: Path) -> None:
    add_flow(project, "model", MODEL)
    table = ductaflow.grid(instance="{scenario}_{growth}", scenario=["low", "high"],
                           growth=[0.01], label=["{scenario} case"])
    ductaflow.conduct(table, stage="model", project_root=project, mode="script",
                      progress=False)
    frame = ductaflow.results("model", runs_dir=project / "runs")
    assert frame.instance.tolist() == ["low_0.01", "high_0.01"]
    assert frame.label.tolist() == ["low case", "high case"]
    assert frame.npv.tolist() == [10.0, 10.0]


CHARTED = """\
# %%
import ductaflow
from ductaflow import is_notebook_execution, load_cli_config, unpack_config
if not is_notebook_execution():
    config = load_cli_config(None, "charted")
vars().update(unpack_config(config, "charted", locals()))
ductaflow.record(npv=npv, note=note)
"""


def charted_project(project: Path) -> Path:
    """Six instances over scenario x variant, with a number and a hostile text."""
    add_flow(project, "charted", CHARTED)
    table = ductaflow.grid(instance="{scenario}_{variant}", scenario=["low", "mid", "high"],
                           variant=["a", "b"])
    table["npv"] = [3.0, -1.5, 12.0, 7.25, 2500000.0, 0.0]
    table["note"] = "<img src=x onerror=alert(1)>"
    table["flow"] = "flows/charted.py"
    ductaflow.conduct(table, stage="charted", project_root=project, mode="script",
                      progress=False)
    return project / "runs" / "conductor_status_report.html"


def test_the_report_shows_each_stages_results_with_a_chart(project: Path) -> None:
    page = charted_project(project).read_text(encoding="utf-8")
    assert "Results: charted" in page and "colours: variant" not in page
    assert "colours: scenario" in page  # 3 scenarios over 6 rows: a grouping
    assert page.count("<title>") >= 6 and "2,500,000" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_diff_of_two_instances_and_of_an_instance_with_its_previous_run(
        project: Path) -> None:
    _project(project, "script")
    runs = project / "runs"
    found = ductaflow.diff("model/high", "model/low", runs_dir=runs)
    assert "growth 0.03 -> 0.01" in found.config and "scenario high -> low" in found.config
    npv = dict((name, (a, b, change)) for name, a, b, change in found.values)["npv"]
    assert npv == (30.0, 10.0, "-20 (-66.7%)")
    assert found.code == () and found.a.status == "success"
    with pytest.raises(UsageError, match="1 finished run"):
        ductaflow.diff("model/high", runs_dir=runs)

    (project / "model.csv").write_text(TABLE.replace("0.03", "0.05"), encoding="utf-8")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode="script",
                      progress=False)
    again = ductaflow.diff("model/high", runs_dir=runs)
    assert again.config == ("growth 0.03 -> 0.05",)
    assert ("npv", 30.0, 50.0, "+20 (+66.7%)") in again.values
    assert ("peak load", 812, 812, "") in again.values

    shown = run_cli("diff", "model/high", "model/low", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "growth 0.05 -> 0.01" in shown.stdout and "-40 (-80.0%)" in shown.stdout
    alone = run_cli("diff", "model/low", cwd=project)
    assert alone.returncode == 2 and len(alone.stderr.strip().splitlines()) == 1


def test_history_keeps_five_runs_and_survives_a_killed_conductor(project: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from ductaflow.run_folder import records

    add_flow(project, "model", MODEL.replace("if scenario", "import time, os\n"
                                             "time.sleep(float(os.environ.get('SLOW', 0)))\n"
                                             "if scenario", 1))
    table = project / "model.csv"
    folder = project / "runs" / "model" / "low"
    for growth in range(1, 8):
        table.write_text(f"instance,scenario,growth,label\nlow,low,{growth},x\n",
                         encoding="utf-8")
        ductaflow.conduct(str(table), project_root=project, mode="script", progress=False)
    history = records.read_history(folder)
    assert [run["config"]["growth"] for run in history] == [3, 4, 5, 6, 7]
    assert history[-1]["values"]["npv"] == 7000

    table.write_text("instance,scenario,growth,label\nlow,low,8,x\n", encoding="utf-8")
    env = {**os.environ, "SLOW": "30", "PYTHONPATH": str(Path(__file__).parents[1])}
    conductor = subprocess.Popen([sys.executable, "-m", "ductaflow", "conduct", "model.csv",
                                  "--mode", "script"], cwd=project, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + 60
    results = folder / "model_results.json"
    while time.monotonic() < deadline and not (
            results.exists() and '"npv": 8000' in results.read_text(encoding="utf-8")):
        time.sleep(0.05)  # until the new run recorded: its flow is in its sleep
    os.killpg(conductor.pid, signal.SIGKILL)
    conductor.wait()
    assert [run["config"]["growth"] for run in records.read_history(folder)] == [3, 4, 5, 6, 7]
    assert (folder / ".ductaflow" / "started.json").exists()  # killed mid-run indeed


def test_a_select_conduct_keeps_the_rest_of_the_stage(project: Path) -> None:
    _project(project, "script")
    ductaflow.conduct(str(project / "model.csv"), project_root=project, mode="script",
                      select=["model/low"], force=True, progress=False)
    frame = ductaflow.results("model", runs_dir=project / "runs")
    assert frame.instance.tolist() == ["low", "high", "bad"]
    assert frame.attrs["left_out"] == []
    assert (frame.status == ["success", "success", "error"]).all()


def test_a_stage_csv_stays_aligned_when_a_parameter_is_named_like_a_column() -> None:
    """A table column ``status`` repeats the results' own ``status`` header: every row
    still has as many cells as the header, alone or with another stage."""
    import csv
    import io

    from ductaflow.reporting.stage_results import StageRow, StageTable, stage_csv

    rows = (StageRow("a", "s/a", {"status": "draft", "x": 1}, "success", {"npv": 2.5}),
            StageRow("b", "s/b", {"status": "final", "x": 2}, "error", {}))
    clash = StageTable("s", ("status", "x"), ("npv",), rows)
    plain = StageTable("t", ("y",), (), (StageRow("c", "t/c", {"y": "=1+1"}, "success", {}),))
    for tables in (clash, [clash, plain]):
        lines = list(csv.reader(io.StringIO(stage_csv(tables))))
        assert len(lines) == 1 + len(rows) + (0 if tables is clash else 1)
        assert {len(line) for line in lines} == {len(lines[0])}, lines
