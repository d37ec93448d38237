"""Names that pass a character count but not a file system, or that collide with the
runs folder's own files: refused at plan time, one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import add_flow, run_cli

FLOW = '# %% tags=["parameters"]\nconfig = {}\n'


@pytest.mark.parametrize(("stage", "instance", "message"), [
    ("act", "😀" * 70, "280 bytes in UTF-8"),  # 70 characters, 280 bytes
    ("act", "é" * 99 + "x" * 3, "longer than 100 characters"),
    ("act", "日本" * 34, "204 bytes in UTF-8"),
    ("conductor_results", "a", "collides with ductaflow's own files"),
    (".conductor.lock", "a", "collides with ductaflow's own files"),
    ("Conductor_Status_Report", "a", "collides with ductaflow's own files"),
])
def test_a_name_no_file_system_or_runs_folder_can_hold_is_refused(
        project: Path, stage: str, instance: str, message: str) -> None:
    add_flow(project, stage, FLOW)
    (project / f"{stage}.csv").write_text(f"instance\n{instance}\n", encoding="utf-8")
    done = run_cli("conduct", f"{stage}.csv", cwd=project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not (project / "runs").exists()


def test_a_name_just_inside_the_byte_limit_runs(project: Path) -> None:
    add_flow(project, "act", FLOW)
    name = "日本" * 33 + "x"  # 199 bytes
    (project / "act.csv").write_text(f"instance\n{name}\n", encoding="utf-8")
    done = run_cli("conduct", "act.csv", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr


def test_a_flow_whose_derived_file_names_would_not_fit_is_refused(project: Path) -> None:
    """``日本`` × 33 + ``.py`` is 201 bytes; its ``_execution_output.attempt1.txt`` would
    pass 255: refused at plan time, nothing written."""
    stem = "日本" * 33
    add_flow(project, stem, FLOW)
    (project / "act.csv").write_text(f"instance,flow\na,flows/{stem}.py\n", encoding="utf-8")
    done = run_cli("conduct", "act.csv", cwd=project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "row 2, column 2 (flow)" in done.stderr and "bytes in UTF-8" in done.stderr
    assert not (project / "runs").exists()


def test_a_flow_just_inside_the_limit_keeps_every_attempt_it_makes(project: Path) -> None:
    """192 bytes of stem: output, config and two attempts' set-aside files all exist."""
    stem = "日本" * 32
    add_flow(project, stem, FLOW + "raise ValueError('again')\n")
    (project / "act.csv").write_text(f"instance,flow\na,flows/{stem}.py\n", encoding="utf-8")
    done = run_cli("conduct", "act.csv", "--mode", "script", "--retries", "1", cwd=project)
    assert done.returncode == 1, done.stdout + done.stderr
    folder = project / "runs" / "act" / "a"
    names = {p.name for p in folder.iterdir()}
    assert f"{stem}_execution_output.txt" in names
    assert f"{stem}_execution_output.attempt1.txt" in names, names
