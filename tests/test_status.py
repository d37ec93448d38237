"""The status rules (docs/concepts.md), provenance, and what ``ductaflow status`` reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ductaflow.model import Status
from ductaflow.reporting.inventory import NOT_IN_LAST_CONDUCT, status_rows
from ductaflow.run_folder import provenance, records
from ductaflow.run_folder.files import RECORD
from ductaflow.run_folder.lights import analyze_execution_logs, is_warning_line, scan_output, worst

OK = "✅ Completed flow | Time: 1.00s"
FAILED = "❌ Failed flow | Time: 0.50s | ValueError: bad"


def write_output(folder: Path, *lines: str, stem: str = "flow") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}_execution_output.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --- the warning rule, at its edge ------------------------------------------------------------


@pytest.mark.parametrize("line, warns", [
    ("x" * 7 + "warning:", True),  # ends at character 15: wholly inside
    ("x" * 8 + "warning:", False),  # one more pushes the colon out
    ("x" * 7 + "WARNING: loud", True),
    ("Warning: 3 zones have no population", True),
    ("UserWarning: deprecated", True),
    ("warning without colon", False),
    ("x" * 14 + "⚠", True),
    ("x" * 15 + "⚠ too late", False),
    ("⚠️ low memory", True),
    ("all fine", False),
    ("", False),
])
def test_warning_rule_is_spec_exactly(line: str, warns: bool) -> None:
    assert is_warning_line(line) is warns
    assert is_warning_line(line) is ("warning:" in line[:15].lower() or "⚠" in line[:15])


def test_output_lights(tmp_path: Path) -> None:
    assert scan_output(write_output(tmp_path / "a", "hello", OK)) is Status.SUCCESS
    assert scan_output(write_output(tmp_path / "b", "Warning: hot", OK)) is Status.WARNING
    assert scan_output(write_output(tmp_path / "c", "Warning: hot", FAILED)) is Status.ERROR
    assert scan_output(write_output(tmp_path / "d", FAILED, "")) is Status.ERROR
    assert scan_output(tmp_path / "missing.txt") is Status.ERROR


def test_the_footer_never_counts_for_the_warning_scan(tmp_path: Path) -> None:
    # The emoji sits at character 13 of the footer: it would warn on any other line.
    path = write_output(tmp_path, "fine", "✅ Completed ⚠ | Time: 1.00s")
    assert scan_output(path) is Status.SUCCESS
    assert analyze_execution_logs(tmp_path) == "success"


def test_worst_orders_red_over_orange_over_green() -> None:
    assert worst([Status.SUCCESS, Status.WARNING]) is Status.WARNING
    assert worst([Status.WARNING, Status.ERROR, Status.SUCCESS]) is Status.ERROR
    assert worst([]) is Status.SUCCESS


def test_an_instance_without_output_or_footer_is_red(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert analyze_execution_logs(tmp_path / "empty") == "error"
    write_output(tmp_path / "killed", "half way")
    assert analyze_execution_logs(tmp_path / "killed") == "error"


# --- builds -----------------------------------------------------------------------------------


def make_build(folder: Path, *children: tuple[str, str, list[str]]) -> Path:
    """A build folder with its own green output and ``(dir, manifest status, lines)`` flows."""
    write_output(folder, "building", OK, stem="build")
    for where, status, lines in children:
        write_output(folder / where, *lines, stem=where.rsplit("/", 1)[-1])
        records.append_flows_manifest(folder, {
            "flow": f"flows/{where.rsplit('/', 1)[-1]}.py", "execution_dir": where,
            "status": status, "output_file": f"{where}/{where.rsplit('/', 1)[-1]}"
                                              "_execution_output.txt"})
    return folder


def test_a_build_is_the_worst_of_its_flows(tmp_path: Path) -> None:
    green = make_build(tmp_path / "g", ("runs/a", "done", ["ok", OK]))
    orange = make_build(tmp_path / "o", ("runs/a", "done", ["ok", OK]),
                        ("runs/b", "done", ["Warning: thin", OK]))
    red = make_build(tmp_path / "r", ("runs/a", "done", ["ok", OK]),
                     ("runs/b", "done", ["boom", FAILED]))
    red_by_manifest = make_build(tmp_path / "m", ("runs/a", "error", ["ok", OK]))
    assert analyze_execution_logs(green) == "success"
    assert analyze_execution_logs(orange) == "warning"
    assert analyze_execution_logs(red) == "error"
    assert analyze_execution_logs(red_by_manifest) == "error"


def test_a_build_with_a_manifest_counts_only_the_flows_it_ran(tmp_path: Path) -> None:
    build = make_build(tmp_path / "b", ("runs/a", "done", ["ok", OK]))
    write_output(build / "scratch", "Warning: left over from an old run", OK)
    assert analyze_execution_logs(build) == "success"


def test_a_build_without_a_manifest_counts_every_flow_below_it(tmp_path: Path) -> None:
    build = tmp_path / "b"
    write_output(build, "building", OK, stem="build")
    write_output(build / "runs" / "step", "Warning: thin", OK)
    assert analyze_execution_logs(build) == "warning"


def test_own_warning_makes_a_build_orange(tmp_path: Path) -> None:
    build = tmp_path / "b"
    write_output(build, "⚠ careful", OK, stem="build")
    assert analyze_execution_logs(build) == "warning"


# --- provenance -------------------------------------------------------------------------------


def test_provenance_names_host_python_and_packages(tmp_path: Path) -> None:
    found = provenance.collect(tmp_path)
    assert found["host"] and found["python"].count(".") == 2
    assert "ductaflow" in found["packages"] and "papermill" in found["packages"]
    found["packages"].clear()  # a copy: the per-process cache stays intact
    assert provenance.collect(tmp_path)["packages"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   cwd=root, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_provenance_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) is None  # not a repository
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "flow.py").write_text("print(1)\n")
    git(tmp_path, "add", "flow.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    clean = provenance.git_state(tmp_path)
    assert clean is not None and len(clean["commit"]) == 40
    assert clean["dirty"] is False and clean["branch"] == "main"
    assert provenance.collect(tmp_path)["git"] == clean
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "new.txt").write_text("untracked outputs do not count")
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "flow.py").write_text("print(2)\n")
    assert provenance.git_state(tmp_path / "runs")["dirty"] is True


def test_provenance_without_git_leaves_git_out(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert provenance.git_state(tmp_path) is None


def test_parse_git_status() -> None:
    text = "# branch.oid abc123\n# branch.head (detached)\n1 .M N... 100644 x\n"
    assert provenance.parse_git_status(text) == {"commit": "abc123", "dirty": True}
    assert provenance.parse_git_status("# branch.oid (initial)\n# branch.head main\n") == {
        "commit": "", "dirty": False, "branch": "main"}
    assert provenance.parse_git_status("") is None


# --- status from disk -------------------------------------------------------------------------


def write_record(folder: Path, status: str, **extras: object) -> None:
    stage, name = folder.parent.name, folder.name
    write_output(folder, "done", OK if status != "error" else FAILED, stem="flow")
    records.write_record(folder, records.new_record(
        stage=stage, instance=name, flow="flows/flow.py", config={}, code={}, inputs={},
        upstream={}, status=status, started_at="2030-01-01T10:00:00.000+00:00",
        ended_at="2030-01-01T10:00:02.000+00:00", duration_s=2.0, **extras))


def test_status_rows_find_every_instance_on_disk(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_record(runs / "prep" / "a", "success")
    write_record(runs / "prep" / "b", "error", error="ValueError: bad")
    write_output(runs / "prep" / "c", "Warning: no record", OK)  # no record: from its logs
    records.write_started(runs / "model" / "k", {"flow": "flows/model.py"})  # killed
    (runs / "model" / "not-an-instance").mkdir(parents=True)
    (runs / "conductor_results.csv").write_text(
        "stage,instance,action,status\nprep,a,ran,success\nprep,b,failed,error\n"
        "model,k,ran,success\n", encoding="utf-8")
    rows = {r.key: r for r in status_rows(runs)}
    assert list(rows) == ["prep/a", "prep/b", "model/k", "prep/c"]  # the conduct's order first
    assert rows["prep/a"].status == "success" and rows["prep/a"].from_record
    assert rows["prep/a"].duration_s == 2.0 and rows["prep/a"].action == "ran"
    assert rows["prep/b"].status == "error" and rows["prep/b"].action == "failed"
    assert rows["prep/c"].status == "warning" and not rows["prep/c"].from_record
    assert rows["prep/c"].in_last_conduct is False
    assert NOT_IN_LAST_CONDUCT in rows["prep/c"].note
    assert rows["model/k"].incomplete and rows["model/k"].status == ""
    assert rows["model/k"].flow == "flows/model.py"
    assert rows["prep/a"].in_last_conduct is True
    assert rows["prep/a"].ended.startswith("2030-01-01") and rows["model/k"].ended == ""


def test_status_rows_without_results_csv_do_not_guess(tmp_path: Path) -> None:
    write_record(tmp_path / "prep" / "a", "warning")
    (row,) = status_rows(tmp_path)
    assert row.in_last_conduct is None and row.status == "warning"
    (row,) = status_rows(tmp_path, known_keys={"prep/other"})
    assert row.in_last_conduct is False


def test_status_rows_of_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    from ductaflow.errors import UsageError

    with pytest.raises(UsageError, match="no runs folder"):
        status_rows(tmp_path / "nope")


def test_records_keep_free_form_provenance(tmp_path: Path) -> None:
    folder = tmp_path / "prep" / "a"
    write_record(folder, "success", provenance=provenance.collect(tmp_path))
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    assert record["provenance"]["python"]
