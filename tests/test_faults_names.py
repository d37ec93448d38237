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
