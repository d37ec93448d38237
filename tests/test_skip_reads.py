"""What a consumer read decides: upstream outputs edited by hand rerun it, an upstream
rerun that writes the same bytes stops at it (early cutoff), the code recorded is the
code that ran, and project modules a flow imported count as code."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import ductaflow
from ductaflow.model import Action

from .conftest import add_flow, run_cli

pytestmark = pytest.mark.kernel

HEADER = """\
# %% tags=["parameters"]
config = {}

# %%
from pathlib import Path
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "flow")
"""

PREP = HEADER + """\
# a comment line the tests edit
Path("prepared.csv").write_text(f"value\\n{config['value']}\\n", encoding="utf-8")
Path("extra").mkdir(exist_ok=True)
Path("extra/part.txt").write_text("part\\n", encoding="utf-8")
"""

MODEL = HEADER + """\
text = Path(config["prepared"]).read_text(encoding="utf-8")
Path("result.txt").write_text(text.upper(), encoding="utf-8")
"""

FOLDER = HEADER + """\
names = sorted(p.name for p in Path(config["folder"]).iterdir())
Path("names.txt").write_text(",".join(names), encoding="utf-8")
"""


def _project(project: Path) -> list[str]:
    add_flow(project, "prep", PREP)
    add_flow(project, "model", MODEL)
    add_flow(project, "folder", FOLDER)
    (project / "prep.csv").write_text("instance,value\nlow,1\nhigh,2\n", encoding="utf-8")
    (project / "model.csv").write_text(
        "instance,prepared\n{s},runs/prep/{s}/prepared.csv\n".replace("{s}", "low")
        + "high,runs/prep/high/prepared.csv\n", encoding="utf-8")
    (project / "folder.csv").write_text("instance,folder\nlow,runs/prep/low\n",
                                        encoding="utf-8")
    return [str(project / n) for n in ("prep.csv", "model.csv", "folder.csv")]


def _conduct(project: Path, tables: list[str], mode: str = "script", **kw) -> dict:
    results = ductaflow.conduct(tables, project_root=project, mode=mode, progress=False, **kw)
    assert all(r.status != "error" for r in results), [r.error for r in results]
    return {r.key: r for r in results}


def _ran(results: dict) -> dict[str, str]:
    return {k: r.reason for k, r in results.items() if r.action is Action.RAN}


def _dry(project: Path, tables: list[str]) -> dict[str, str]:
    return {d.instance.key: d.reason
            for d in ductaflow.plan(tables, project_root=project).decisions}


def test_an_upstream_output_edited_by_hand_reruns_what_reads_it(project: Path) -> None:
    tables = _project(project)
    _conduct(project, tables)
    prepared = project / "runs/prep/low/prepared.csv"
    with prepared.open("a", encoding="utf-8") as handle:
        handle.write("9\n")
    assert _dry(project, tables)["model/low"] == (
        "upstream output changed: runs/prep/low/prepared.csv")
    ran = _ran(_conduct(project, tables))
    assert ran == {"model/low": "upstream output changed: runs/prep/low/prepared.csv",
                   "folder/low": "upstream output changed: runs/prep/low"}
    assert (project / "runs/model/low/result.txt").read_text(encoding="utf-8") == \
        "VALUE\n1\n9\n"
    assert _ran(_conduct(project, tables)) == {}  # the edit is now what it read


def test_a_touch_or_a_rewrite_with_the_same_bytes_reruns_nothing(project: Path) -> None:
    tables = _project(project)
    _conduct(project, tables)
    prepared = project / "runs/prep/low/prepared.csv"
    later = time.time() + 50
    import os

    os.utime(prepared, (later, later))
    prepared.write_bytes(prepared.read_bytes())
    assert set(_dry(project, tables).values()) == {"up to date"}


def test_an_upstream_rerun_with_the_same_bytes_stops_at_its_readers(project: Path) -> None:
    tables = _project(project)
    _conduct(project, tables)
    flow = project / "flows/prep.py"
    flow.write_text(flow.read_text(encoding="utf-8").replace("a comment line",
                                                             "another comment"),
                    encoding="utf-8")
    assert _dry(project, tables)["model/low"] == "upstream ran: prep/low"
    results = _conduct(project, tables)
    assert set(_ran(results)) == {"prep/low", "prep/high"}
    for key in ("model/low", "model/high"):
        assert results[key].action is Action.SKIPPED
        assert results[key].reason == (f"up to date (prep/{key[6:]} ran; what this reads is "
                                       "unchanged)")
    # a reference to a folder counts what the flow made there, not the engine's files
    assert results["folder/low"].action is Action.SKIPPED
    assert set(_dry(project, tables).values()) == {"up to date"}


def test_an_upstream_run_alone_with_the_same_bytes_shows_in_the_dry_run(project: Path) -> None:
    tables = _project(project)
    _conduct(project, tables)
    _conduct(project, tables, select=["prep/low"], force=True)
    done = run_cli("conduct", "prep.csv", "model.csv", "folder.csv", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "model/low" in x)
    assert "skip  up to date (prep/low ran; what this reads is unchanged)" in line
    assert "folder/low" in done.stdout


def test_a_file_added_to_a_folder_read_whole_reruns_its_reader(project: Path) -> None:
    tables = _project(project)
    _conduct(project, tables)
    (project / "runs/prep/low/extra/new.txt").write_text("new", encoding="utf-8")
    assert _dry(project, tables)["folder/low"] == "upstream output changed: runs/prep/low"


SLOW = HEADER + """\
import time
Path("started").write_text("", encoding="utf-8")
while not Path("go").exists():
    time.sleep(0.02)
from lib.demand import ELASTICITY
Path("out.txt").write_text(str(ELASTICITY), encoding="utf-8")
"""


def _edit_when_started(folder: Path, edit) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 60
        while not (folder / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        edit()
        (folder / "go").write_text("", encoding="utf-8")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _slow_project(project: Path) -> list[str]:
    add_flow(project, "act", SLOW)
    (project / "lib").mkdir()
    (project / "lib/__init__.py").write_text("", encoding="utf-8")
    (project / "lib/demand.py").write_text("ELASTICITY = 0.5\n", encoding="utf-8")
    (project / "act.csv").write_text("instance,x\na,1\n", encoding="utf-8")
    return [str(project / "act.csv")]


@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_imported_project_modules_are_code(project: Path, mode: str) -> None:
    tables = _slow_project(project)
    (project / "runs/act/a").mkdir(parents=True)
    (project / "runs/act/a/go").write_text("", encoding="utf-8")
    _conduct(project, tables, mode)
    assert _dry(project, tables)["act/a"] == "up to date"
    (project / "lib/demand.py").write_text("ELASTICITY = 0.7\n", encoding="utf-8")
    assert _dry(project, tables)["act/a"] == "code changed: lib/demand.py"
    _conduct(project, tables, mode)
    assert (project / "runs/act/a/out.txt").read_text(encoding="utf-8") == "0.7"
    (project / "lib/demand.py").unlink()  # a module that is gone counts as changed
    assert _dry(project, tables)["act/a"] == "code changed: lib/demand.py"


@pytest.mark.parametrize("what", ["flows/act.py", "lib/demand.py"])
@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_code_edited_while_it_runs_reruns_next_time(project: Path, mode: str,
                                                    what: str) -> None:
    tables = _slow_project(project)
    folder = project / "runs/act/a"
    folder.mkdir(parents=True)
    target = project / what

    def edit() -> None:
        target.write_text(target.read_text(encoding="utf-8") + "# saved mid-run\n",
                          encoding="utf-8")

    watcher = _edit_when_started(folder, edit)
    _conduct(project, tables, mode)
    watcher.join(10)
    assert _dry(project, tables)["act/a"] == f"code changed: {what}"


# --- the spurious-rerun matrix: none of these reruns anything ----------------------------

USES = HEADER + """\
from lib.demand import ELASTICITY
text = Path(config["prepared"]).read_text(encoding="utf-8")
zones = Path(config["zones"]).read_text(encoding="utf-8")
Path("result.txt").write_text(f"{text}{zones}{ELASTICITY}", encoding="utf-8")
"""


def _matrix_project(root: Path) -> list[str]:
    from openpyxl import Workbook

    for folder in ("flows", "config/flows", "data", "lib"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    add_flow(root, "prep", PREP)
    add_flow(root, "model", USES)
    (root / "lib/__init__.py").write_text("", encoding="utf-8")
    (root / "lib/demand.py").write_text("ELASTICITY = 0.5\n", encoding="utf-8")
    (root / "data/zones.csv").write_text("zone\nnorth\n", encoding="utf-8")
    book = Workbook()
    prep = book.active
    prep.title = "prep"
    for row in (["instance", "value"], ["low", 1], ["high", 2.5]):
        prep.append(row)
    model = book.create_sheet("model")
    for row in (["instance", "prepared", "zones"],
                ["low", "runs/prep/low/prepared.csv", "data/zones.csv"],
                ["high", "runs/prep/high/prepared.csv", "data/zones.csv"]):
        model.append(row)
    book.save(root / "scenarios.xlsx")
    return [str(root / "scenarios.xlsx")]


def _touch_all(root: Path) -> None:
    later = time.time() + 100
    for path in root.rglob("*"):
        if path.is_file():
            import os

            os.utime(path, (later, later))


def _resave_workbook(root: Path) -> None:
    from openpyxl import load_workbook

    book = load_workbook(root / "scenarios.xlsx")
    book.save(root / "scenarios.xlsx")


def _checkout(root: Path) -> None:
    """What a checkout does: every tracked file written again, same bytes, new times."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                            "PATH": __import__("os").environ["PATH"], "HOME": str(root)})

    (root / ".gitignore").write_text("runs/\n", encoding="utf-8")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "project")
    time.sleep(0.05)
    for path in root.rglob("*"):
        if path.is_file() and "runs" not in path.parts and ".git" not in path.parts:
            path.unlink()
    git("checkout", "--", ".")


@pytest.mark.parametrize("edit", ["touch every file", "workbook saved unchanged",
                                  "git checkout", "project folder moved"])
def test_the_spurious_rerun_matrix_is_zero(tmp_path: Path, edit: str) -> None:
    import shutil

    root = tmp_path / "project"
    tables = _matrix_project(root)
    _conduct(root, tables)
    if edit == "touch every file":
        _touch_all(root)
    elif edit == "workbook saved unchanged":
        _resave_workbook(root)
    elif edit == "git checkout":
        _checkout(root)
    else:
        moved = tmp_path / "renamed"
        shutil.move(root, moved)
        root, tables = moved, [str(moved / "scenarios.xlsx")]
    assert set(_dry(root, tables).values()) == {"up to date"}
    results = _conduct(root, tables)
    assert {r.action for r in results.values()} == {Action.SKIPPED}


def test_an_upstream_forced_to_rerun_the_same_bytes_reruns_no_reader(tmp_path: Path) -> None:
    root = tmp_path / "project"
    tables = _matrix_project(root)
    _conduct(root, tables)
    results = _conduct(root, tables, force=True, select=["prep"])
    assert {k for k, r in results.items() if r.action is Action.RAN} == {"prep/low", "prep/high"}
    assert _dry(root, tables)["model/low"] == ("up to date (prep/low ran; what this reads is "
                                               "unchanged)")
    results = _conduct(root, tables)
    assert {r.action for r in results.values()} == {Action.SKIPPED}
    assert set(_dry(root, tables).values()) == {"up to date"}  # its record caught up
