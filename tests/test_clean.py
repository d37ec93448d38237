"""``ductaflow clean``: the only command that deletes, and only what no table asks for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ductaflow

from .conftest import add_flow, run_cli

FLOW = """\
# %% tags=["parameters"]
config = {}
# %%
from pathlib import Path
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "act")
Path("out.txt").write_text("x" * 1000, encoding="utf-8")
"""


@pytest.fixture
def conducted(project: Path) -> Path:
    add_flow(project, "act", FLOW)
    add_flow(project, "other", FLOW)
    (project / "act.csv").write_text("instance,k,enabled\na,1,\nb,2,\nc,3,\n", encoding="utf-8")
    (project / "other.csv").write_text("instance,k\nz,1\n", encoding="utf-8")
    for table in ("act.csv", "other.csv"):
        ductaflow.conduct(str(project / table), project_root=project, mode="script",
                          progress=False)
    (project / "act.csv").write_text("instance,k,enabled\na,1,\nc,3,FALSE\n",
                                     encoding="utf-8")  # b removed, c disabled
    return project


@pytest.mark.kernel
def test_clean_lists_then_removes_only_what_no_table_asks_for(conducted: Path) -> None:
    runs = conducted / "runs"
    outside = conducted / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine", encoding="utf-8")
    os.symlink(outside, runs / "act" / "linked")
    listed = run_cli("clean", "act.csv", cwd=conducted)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["act/b", "act/c", "act/linked"]
    assert "no table defines it" in lines[0] and "its row is disabled" in lines[1]
    assert "nothing removed" in lines[3] and "other" in lines[4]  # another table's stage
    assert (runs / "act/b").is_dir()  # listing removes nothing

    removed = run_cli("clean", "act.csv", "--yes", cwd=conducted)
    assert removed.returncode == 0, removed.stderr
    assert "removed 3 instance folders" in removed.stdout
    assert sorted(p.name for p in (runs / "act").iterdir()) == ["a"]
    assert (runs / "other/z/out.txt").is_file()  # another table's results stay
    assert (outside / "keep.txt").read_text(encoding="utf-8") == "mine"  # a link, not a folder
    again = run_cli("clean", "act.csv", cwd=conducted)
    assert again.stdout.startswith("nothing to clean")


@pytest.mark.kernel
def test_clean_waits_for_no_conduct(conducted: Path) -> None:
    from filelock import FileLock

    with FileLock(str(conducted / "runs" / ".conductor.lock")):
        refused = run_cli("clean", "act.csv", "--yes", cwd=conducted)
    assert refused.returncode == 2 and "another conduct is running" in refused.stderr
    assert (conducted / "runs/act/b").is_dir()
