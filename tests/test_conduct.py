"""conduct end to end on tmp_path projects: every Skip and rerun rule, failures, locking."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ductaflow.conductor import conduct
from ductaflow.model import Action, Status
from ductaflow.run_folder import records
from ductaflow.run_folder.files import PLAN_CACHE

from .conftest import DATA, REPO, run_cli

pytestmark = pytest.mark.kernel

PREP = "instance,scenario,growth\nA,A,0.5\nB,B,1.0\n"
MODEL = "instance,input,factor\nA,runs/prep/A/out.csv,2\nB,runs/prep/B/out.csv,3\n"


def make_project(root: Path, prep: str = PREP, model: str = MODEL) -> Path:
    for folder in ("flows", "scenarios"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "df_prep.py", root / "flows" / "prep.py")
    shutil.copy(DATA / "df_model.py", root / "flows" / "model.py")
    (root / "scenarios" / "prep.csv").write_text(prep, encoding="utf-8")
    (root / "scenarios" / "model.csv").write_text(model, encoding="utf-8")
    return root


TABLES = ["scenarios/prep.csv", "scenarios/model.csv"]


def go(root: Path, monkeypatch: pytest.MonkeyPatch, mode: str = "script", **kw):
    """Run conduct from the project root; return {key: result} and the keys that ran."""
    log = root / "ran.log"
    log.unlink(missing_ok=True)
    monkeypatch.setenv("DF_RUN_LOG", str(log))
    kw.setdefault("jobs", 2)
    results = conduct([str(root / t) for t in TABLES], project_root=root, mode=mode, **kw)
    ran = sorted(log.read_text(encoding="utf-8").split()) if log.exists() else []
    return {r.key: r for r in results}, ran


def reasons(results) -> dict[str, str]:
    return {k: r.reason for k, r in results.items() if r.action is not Action.SKIPPED}


def test_notebook_mode_first_run_rerun_and_edits(tmp_path, monkeypatch) -> None:
    root = make_project(tmp_path)
    results, ran = go(root, monkeypatch, mode="notebook")
    assert ran == ["model/A", "model/B", "prep/A", "prep/B"]
    assert all(r.action is Action.RAN for r in results.values())
    assert (root / "runs/model/B/result.txt").read_text(encoding="utf-8") == "6.0\n"
    assert (root / "runs/model/A/model.ipynb").is_file()
    assert results["model/A"].status is Status.SUCCESS

    results, ran = go(root, monkeypatch, mode="notebook")
    assert ran == [] and all(r.action is Action.SKIPPED for r in results.values())

    (root / "scenarios/prep.csv").write_text(PREP.replace("0.5", "0.25"), encoding="utf-8")
    results, ran = go(root, monkeypatch, mode="notebook")
    assert ran == ["model/A", "prep/A"]
    assert reasons(results) == {"prep/A": "config changed: growth 0.5 -> 0.25",
                                "model/A": "upstream ran: prep/A"}


def test_unchanged_rerun_runs_none_and_new_row_runs_only_itself(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    go(root, monkeypatch)
    results, ran = go(root, monkeypatch)
    assert ran == []
    (root / "scenarios/prep.csv").write_text(PREP + "C,C,2\n", encoding="utf-8")
    results, ran = go(root, monkeypatch)
    assert ran == ["prep/C"] and reasons(results) == {"prep/C": "new"}


def test_edited_flow_reruns_its_stage_and_downstream(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    go(root, monkeypatch)
    flow = root / "flows/model.py"
    flow.write_text(flow.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    results, ran = go(root, monkeypatch)
    assert ran == ["model/A", "model/B"]
    assert reasons(results)["model/A"] == "code changed: flows/model.py"


def test_edited_input_file_reruns_its_readers_but_touch_does_not(tmp_path, monkeypatch):
    root = make_project(tmp_path, prep="instance,scenario,growth,zones\n"
                                       "A,A,0.5,data/zones.txt\nB,B,1.0,\n")
    (root / "data").mkdir()
    zones = root / "data/zones.txt"
    zones.write_text("2\n", encoding="utf-8")
    go(root, monkeypatch)
    os.utime(zones, (time.time() + 5, time.time() + 5))
    assert go(root, monkeypatch)[1] == []
    zones.write_text("4\n", encoding="utf-8")
    results, ran = go(root, monkeypatch)
    assert ran == ["model/A", "prep/A"]
    assert reasons(results)["prep/A"] == "input changed: data/zones.txt"
    assert (root / "runs/model/A/result.txt").read_text(encoding="utf-8") == "12.0\n"


def test_deleted_upstream_output_reruns_producer_and_consumers(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    go(root, monkeypatch)
    (root / "runs/prep/B/out.csv").unlink()
    results, ran = go(root, monkeypatch)
    assert ran == ["prep/B"]  # it wrote the same bytes again: its consumer stops there
    assert reasons(results) == {"prep/B": "missing output: runs/prep/B/out.csv"}
    assert results["model/B"].reason == ("up to date (prep/B ran; what this reads is "
                                         "unchanged)")
    (root / "runs/prep/B/out.csv").write_text("B,7.0\n", encoding="utf-8")  # by hand
    results, ran = go(root, monkeypatch)
    assert ran == ["model/B"]
    assert reasons(results) == {"model/B": "upstream output changed: runs/prep/B/out.csv"}


def test_failure_blocks_only_dependents_then_reruns_as_failed(tmp_path, monkeypatch):
    root = make_project(tmp_path, prep="instance,scenario,growth,fail\nA,A,0.5,true\nB,B,1,\n")
    results, ran = go(root, monkeypatch)
    assert results["prep/A"].action is Action.FAILED
    assert results["prep/A"].status is Status.ERROR
    assert "RuntimeError: prep failed for A" in results["prep/A"].error
    assert results["model/A"].action is Action.BLOCKED and results["model/A"].status is None
    assert results["model/B"].action is Action.RAN
    assert (root / "runs/prep/A/prep_execution_output.txt").is_file()  # artifacts kept
    rows = list(csv.DictReader(open(root / "runs/conductor_results.csv", encoding="utf-8")))
    assert {r["instance"]: r["action"] for r in rows if r["stage"] == "model"} == {
        "A": "blocked", "B": "ran"}
    (root / "scenarios/prep.csv").write_text(PREP, encoding="utf-8")
    results, ran = go(root, monkeypatch)
    assert ran == ["model/A", "prep/A"]
    assert reasons(results)["prep/A"].startswith("last run failed")


def test_warning_is_orange_and_force_and_select(tmp_path, monkeypatch):
    root = make_project(tmp_path, model=MODEL.replace(",3\n", ",300\n"))
    results, _ = go(root, monkeypatch)
    assert results["model/B"].status is Status.WARNING
    assert results["model/A"].status is Status.SUCCESS
    results, ran = go(root, monkeypatch, force=True, select=["model/B"])
    assert ran == ["model/B"] and reasons(results) == {"model/B": "forced"}


def conduct_cli(root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DF_RUN_LOG": str(root / "ran.log")}
    return subprocess.Popen(
        [sys.executable, "-m", "ductaflow", "conduct", *TABLES, "--mode", "script",
         "--jobs", "2", *extra], cwd=root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, encoding="utf-8", start_new_session=True)


def wait_for(predicate, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_kill_9_mid_run_then_rerun_resumes_exactly_the_unfinished(tmp_path):
    root = make_project(tmp_path, prep="instance,scenario,growth,sleep\nA,A,0.5,\nB,B,1,30\n")
    proc = conduct_cli(root)
    wait_for(lambda: (root / "runs/prep/B/.ductaflow/started.json").exists()
             and (root / "runs/model/A/.ductaflow/record.json").exists())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (root / "ran.log").unlink()
    (root / "scenarios/prep.csv").write_text(PREP, encoding="utf-8")  # no sleep now
    done = run_cli("conduct", *TABLES, "--mode", "script", "--dry-run", cwd=root)
    assert "prep/B" in done.stdout and "last run incomplete" in done.stdout
    done = run_cli("conduct", *TABLES, "--mode", "script", cwd=root,
                   env={"DF_RUN_LOG": str(root / "ran.log")})
    assert done.returncode == 0, done.stdout + done.stderr
    ran = sorted((root / "ran.log").read_text(encoding="utf-8").split())
    assert ran == ["model/B", "prep/B"]


def test_kill_9_of_conductor_alone_stops_its_flows(tmp_path):
    root = make_project(tmp_path, prep="instance,scenario,growth,sleep\nA,A,0.5,3\nB,B,1,3\n")
    proc = conduct_cli(root)
    wait_for(lambda: (root / "runs/prep/A/.ductaflow/started.json").exists())
    time.sleep(0.5)
    proc.kill()  # the conductor only, not its process group
    proc.wait()
    time.sleep(5)  # the flows would have finished by now had they survived
    assert not (root / "runs/prep/A/out.csv").exists()
    assert not (root / "ran.log").exists()


def test_second_conductor_waits_or_refuses(tmp_path):
    root = make_project(tmp_path, prep="instance,scenario,growth,sleep\nA,A,0.5,4\nB,B,1,\n")
    first = conduct_cli(root)
    wait_for(lambda: (root / "runs/prep/A/.ductaflow/started.json").exists())
    refused = run_cli("conduct", *TABLES, "--mode", "script", "--no-wait", cwd=root)
    assert refused.returncode == 2
    assert "another conduct is running" in refused.stderr
    waited = run_cli("conduct", *TABLES, "--mode", "script", cwd=root,
                     env={"DF_RUN_LOG": str(root / "second.log")})
    first.wait(60)
    assert first.returncode == 0
    assert waited.returncode == 0
    assert not (root / "second.log").exists()  # everything was done by the first
    ran = sorted((root / "ran.log").read_text(encoding="utf-8").split())
    assert ran == ["model/A", "model/B", "prep/A", "prep/B"]


def test_ctrl_c_stops_running_instances_and_exits_130(tmp_path):
    root = make_project(tmp_path, prep="instance,scenario,growth,sleep\nA,A,0.5,30\nB,B,1,\n")
    proc = conduct_cli(root)
    wait_for(lambda: (root / "runs/prep/A/.ductaflow/started.json").exists())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert (root / "runs/conductor_results.csv").is_file()
    assert (root / "runs/prep/A/.ductaflow/started.json").exists()  # left not done
    assert not (root / "runs/prep/A/.ductaflow/record.json").exists()
    done = run_cli("conduct", *TABLES, "--mode", "script", "--dry-run", cwd=root)
    assert "last run incomplete" in done.stdout


def test_accept_records_without_running_then_everything_skips(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    go(root, monkeypatch)
    (root / "scenarios/prep.csv").write_text(PREP.replace("0.5", "0.25") + "C,C,1\n",
                                             encoding="utf-8")
    flow = root / "flows/model.py"
    flow.write_text(flow.read_text(encoding="utf-8") + "\n# cosmetic\n", encoding="utf-8")
    results, ran = go(root, monkeypatch, accept=True)
    assert ran == []
    assert results["prep/A"].reason == "accepted: config changed: growth 0.5 -> 0.25"
    assert results["model/B"].reason == "accepted: code changed: flows/model.py"
    assert results["prep/C"].action is Action.BLOCKED  # never ran: nothing to accept
    assert results["prep/C"].reason == "not accepted: it never finished"
    results, ran = go(root, monkeypatch)
    assert ran == ["prep/C"]
    assert (root / "runs/prep/A/out.csv").read_text(encoding="utf-8") == "A,1.5\n"  # kept


BUILD = """\
# %% tags=["parameters"]
config = {}

# %%
from ductaflow import run_notebook

run_notebook("flows/child_a.py", config={"x": config["x"]}, execution_dir="runs/a")
run_notebook("flows/child_b.py", config={"x": config["x"]}, execution_dir="runs/b")
print("build done")
"""
CHILD = """\
# %% tags=["parameters"]
config = {{}}

# %%
print("{text}", config["x"])
"""


def test_build_record_covers_the_flows_it_ran(tmp_path):
    (tmp_path / "builds").mkdir()
    (tmp_path / "flows").mkdir()
    (tmp_path / "builds/pipeline.py").write_text(BUILD, encoding="utf-8")
    (tmp_path / "flows/child_a.py").write_text(CHILD.format(text="a ran"), encoding="utf-8")
    (tmp_path / "flows/child_b.py").write_text(CHILD.format(text="Warning: b is odd"),
                                               encoding="utf-8")
    (tmp_path / "pipeline.csv").write_text("instance,x\none,1\n", encoding="utf-8")
    table = str(tmp_path / "pipeline.csv")
    [result] = conduct(table, project_root=tmp_path, jobs=1, export_html=True)
    assert result.action is Action.RAN
    assert result.status is Status.WARNING  # worst of its own output and its flows
    folder = tmp_path / "runs/pipeline/one"
    assert (folder / "runs/a/child_a_execution_output.txt").is_file()
    assert (folder / "pipeline.html").is_file()
    out = (folder / "pipeline_execution_output.txt").read_text(encoding="utf-8")
    assert "✅ Completed child_a" in out and "✅ Completed child_b" in out
    assert [r.action for r in conduct(table, project_root=tmp_path, jobs=1)] == [Action.SKIPPED]
    child = tmp_path / "flows/child_a.py"
    child.write_text(child.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    [result] = conduct(table, project_root=tmp_path, jobs=1)
    assert result.action is Action.RAN and result.reason == "code changed: flows/child_a.py"


def test_timeout_and_fail_fast(tmp_path, monkeypatch):
    root = make_project(tmp_path, prep="instance,scenario,growth,sleep\nA,A,0.5,30\nB,B,1,\n")
    started = time.monotonic()
    results, ran = go(root, monkeypatch, timeout=2, jobs=1, fail_fast=True)
    assert time.monotonic() - started < 25
    assert results["prep/A"].action is Action.FAILED
    assert results["prep/A"].error.startswith("Timeout")
    assert all(results[k].action is Action.BLOCKED for k in ("prep/B", "model/A", "model/B"))
    assert "--fail-fast" in results["prep/B"].reason


def test_retries_rerun_a_failed_instance_and_record_every_attempt(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    flow = root / "flows/prep.py"
    flow.write_text(flow.read_text(encoding="utf-8").replace(
        'if config.get("fail"):',
        'if config["scenario"] == "A" and not Path("tried").exists():\n'
        '    Path("tried").write_text("1")\n'
        '    raise RuntimeError("flaky")\n'
        'if config.get("fail"):'), encoding="utf-8")
    results, ran = go(root, monkeypatch, retries=2)
    assert ran == ["model/A", "model/B", "prep/A", "prep/B"]  # A's first attempt died early
    assert results["prep/A"].action is Action.RAN
    assert "retry 1 of 2 after RuntimeError: flaky" in results["prep/A"].reason
    record = records.read_record(root / "runs/prep/A")
    assert [a["status"] for a in record["attempts"]] == ["error", "success"]
    assert "RuntimeError: flaky" in record["attempts"][0]["error"]
    assert len(records.read_record(root / "runs/prep/B")["attempts"]) == 1


def test_a_no_op_after_a_no_op_uses_the_plan_cache_and_rewrites_nothing(tmp_path, monkeypatch):
    """Once every file has settled, the first no-op keeps its plan; the next one
    reuses it, writes no results file, and still says every instance is up to date."""
    from ductaflow.planning import plan_cache

    from .test_plancache import age

    root = make_project(tmp_path)
    go(root, monkeypatch)
    age(root)
    monkeypatch.setattr(plan_cache, "code_files", lambda: ())
    results, ran = go(root, monkeypatch)
    assert ran == [] and (root / "runs" / PLAN_CACHE).is_file()
    written = {name: (root / "runs" / name).stat().st_ino
               for name in ("conductor_results.csv", "conductor_status_report.html")}
    hits = []
    load = plan_cache.load
    monkeypatch.setattr(plan_cache, "load", lambda *given: hits.append(load(*given)) or hits[-1])
    again, ran = go(root, monkeypatch)
    assert ran == [] and hits and hits[0] is not None
    assert {k: r.action for k, r in again.items()} == {k: Action.SKIPPED for k in results}
    assert {k: r.status for k, r in again.items()} == {k: r.status for k, r in results.items()}
    assert {name: (root / "runs" / name).stat().st_ino for name in written} == written
    (root / "runs/conductor_results.csv").unlink()  # the cached plan's decisions are read
    deleted, ran = go(root, monkeypatch)
    assert ran == [] and hits[-1] is not None
    assert deleted == again and (root / "runs/conductor_results.csv").is_file()
    (root / "scenarios/prep.csv").write_text(PREP.replace("0.5", "0.7"), encoding="utf-8")
    _, ran = go(root, monkeypatch)
    assert ran == ["model/A", "prep/A"]
