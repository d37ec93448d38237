"""Templates and paths: table content cannot run code through templates, nor name a
folder that escapes the runs folder or is unsafe on any OS.

Each unsafe template, instance, stage or flow name goes through the real command line
(or the API for a DataFrame) in a project beside an ``outside`` folder; the whole tree
(project and outside) must be unchanged afterwards. Extends test_templating.py and
test_plan.py, which check the same rules on the pure functions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import unicodedata
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from ductaflow.cli.commands import main
from ductaflow.conductor import conduct
from ductaflow.errors import DuctaflowError

from .test_faults_common import conduct_cli, make_project, one_line_error, snapshot


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    base = tmp_path_factory.mktemp("paths")
    root = make_project(base / "project", {"act": "instance,tag\nA,A\n"})
    (base / "outside").mkdir()
    (base / "outside/keep.txt").write_text("outside\n", encoding="utf-8")
    done = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    assert done.returncode == 0, done.stderr
    return base


@pytest.fixture
def base(ran_once, tmp_path):
    """``project/`` (ran once) beside ``outside/``, in a fresh copy."""
    return shutil.copytree(ran_once, tmp_path / "base", symlinks=True)


def refused(base: Path, capsys, text: str, name: str = "act") -> str:
    """``conduct`` a CSV holding ``text``: exit 2, one line, nothing changed anywhere."""
    root = base / "project"
    folder = root / "scenarios" / "case"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.csv").write_bytes(text.encode("utf-8"))
    before = snapshot(base)
    cwd, handler = os.getcwd(), signal.getsignal(signal.SIGINT)
    capsys.readouterr()
    os.chdir(root)
    try:
        code = main(["conduct", f"scenarios/case/{name}.csv", "--mode", "script"])
    finally:
        os.chdir(cwd)
        signal.signal(signal.SIGINT, handler)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out + err
    assert snapshot(base) == before, "a refused table changed something on disk"
    return one_line_error(err)


# --- templates ---------------------------------------------------------------------------

UNSAFE_FIELDS = ["{x.__class__}", "{x[0]}", "{0}", "{x!r}", "{x:>999999999}", "a{}b",
                 "{x.__init__.__globals__}", "{x:{y}}", "{x!s:>5}", "{x:.1000000f}",
                 "{x:0999999999}", "{x[__class__]}"]


@pytest.mark.parametrize("field", UNSAFE_FIELDS)
@pytest.mark.parametrize("where", ["value", "instance", "flow", "json-list", "json-object"])
def test_unsafe_template_fields_are_refused_when_the_table_is_read(base, capsys, field, where):
    cell = {"value": field, "instance": field, "flow": f"flows/{field}.py",
            "json-list": f'"[""{field}""]"', "json-object": f'"{{""k"": ""{field}""}}"'}[where]
    column = {"instance": "1 (instance)", "flow": "3 (flow)"}.get(where, "4 (y)")
    rows = {"instance": f"{cell},1,flows/act.py,a\n",
            "flow": f"A,1,{cell},a\n"}.get(where, f"A,1,flows/act.py,{cell}\n")
    line = refused(base, capsys, "instance,x,flow,y\n" + rows)
    assert line.startswith(f"error: scenarios/case/act.csv, row 2, column {column}: "), line
    assert "is not allowed" in line or "too wide" in line or "malformed" in line, line


# --- names -------------------------------------------------------------------------------

UNSAFE_NAMES = ["../x", "..", ".", "/abs", "C:\\x", "\\\\server\\share", "a/b", "a\\b",
                "CON", "nul", "con.txt", "Aux.tar.gz", "COM1", "LPT9", "CONIN$", "a:b", "x.",
                "x..", "a*b", "a?b", "a|b", "a<b", "a>b", "a\tb", "x" * 101]
WINDOWS_SUPERSCRIPT = ["COM¹", "LPT²", "com³.txt"]


def csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@pytest.mark.parametrize("name", UNSAFE_NAMES + [
    pytest.param(n)
    for n in WINDOWS_SUPERSCRIPT])
@pytest.mark.parametrize("how", ["cell", "template"])
def test_unsafe_instance_names_are_refused_on_every_os(base, capsys, name, how):
    row = (f"{csv_field(name)},x" if how == "cell" else f"{{scenario}},{csv_field(name)}")
    line = refused(base, capsys, f"instance,scenario\n{row}\n")
    assert line.startswith("error: scenarios/case/act.csv, row 2, column 1 (instance): "
                           "instance name "), line


@pytest.mark.parametrize("template", ["{x:<3}", "{x:>3}", "{x:^5}"])
def test_names_that_a_format_spec_pads_with_spaces_are_refused(base, capsys, template):
    """A cell is stripped when read, so only a rendered template can pad a name."""
    line = refused(base, capsys, f"instance,x\n{template},ab\n")
    assert "starts or ends with a space" in line


def test_a_nul_byte_in_an_instance_name_is_refused(base):
    before = snapshot(base)
    frame = pd.DataFrame({"instance": ["a\x00b"], "flow": ["flows/act.py"]})
    with pytest.raises(DuctaflowError, match="instance name 'a\\\\x00b' contains"):
        conduct(frame, stage="act", project_root=base / "project", mode="script")
    assert snapshot(base) == before


def test_instance_names_differing_only_in_unicode_normalization_are_refused(base, capsys):
    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    line = refused(base, capsys, f"instance,x\n{nfc},1\n{nfd},2\n")
    assert "already defined" in line


@pytest.mark.parametrize("stage", ["CON", "nul", "a:b", "x.", "x ", "x..", "Com1"] + [
    pytest.param(n)
    for n in ("COM¹", "lpt³")])
def test_unsafe_stage_names_from_file_names_are_refused(base, capsys, stage):
    line = refused(base, capsys, "instance,flow\nA,flows/act.py\n", name=stage)
    assert line.startswith(f"error: scenarios/case/{stage}.csv: stage name "), line


@pytest.mark.parametrize("stage", ["CON", "x.", "x ", "..", "AUX.txt"])
def test_unsafe_stage_names_from_sheet_names_are_refused(base, capsys, stage):
    root = base / "project"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = stage
    sheet.append(["instance", "flow"])
    sheet.append(["A", "flows/act.py"])
    book.save(root / "scenarios/sheets.xlsx")
    before = snapshot(base)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(["conduct", "scenarios/sheets.xlsx", "--mode", "script"])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert one_line_error(err).startswith(f"error: scenarios/sheets.xlsx, sheet {stage!r}: ")
    assert snapshot(base) == before


@pytest.mark.parametrize("stage", ["../x", "/abs", "C:\\x", "CON", "a\x00b", "x.", "x ", ".."])
def test_unsafe_stage_names_of_dataframes_are_refused(base, stage):
    before = snapshot(base)
    frame = pd.DataFrame({"instance": ["A"], "flow": ["flows/act.py"]})
    with pytest.raises(DuctaflowError, match="stage name"):
        conduct(frame, stage=stage, project_root=base / "project", mode="script")
    assert snapshot(base) == before




@pytest.mark.parametrize("flow, words", [
    ("../outside/x.py", "lies outside the project root"),
    ("/etc/x.py", "lies outside the project root"),
    ("C:\\x.py", "lies outside the project root"),
    ("flows/../../outside/x.py", "lies outside the project root"),
    ("flows/x\x00.py", ""),
] + [pytest.param(flow, "")
     for flow in ("flows/a:b.py", "flows/CON.py", "flows/sub/NUL.py", "flows./x.py",
                  "flows /x.py")])
def test_unsafe_flow_names_are_refused_on_every_os(base, capsys, flow, words):
    """The file exists (where the OS allows the name); it is refused anyway."""
    root = base / "project"
    if "\x00" not in flow and not flow.startswith(("/", "C:", "..", "flows/..")):
        target = root / flow
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "flows/act.py", target)
    (base / "outside/x.py").write_text("raise SystemExit('ran')\n", encoding="utf-8")
    line = refused(base, capsys, f"instance,flow\nA,{csv_field(flow)}\n")
    assert line.startswith("error: scenarios/case/act.csv, row 2, column 2 (flow): flow "), line
    assert words in line


# --- nothing written outside --------------------------------------------------------------


def test_paths_in_values_reach_the_flow_as_text_and_the_engine_writes_only_in_runs(base):
    """Values that point outside (relative, absolute, through {runs}) are passed on as
    strings; everything the conductor writes lands in the runs folder."""
    root = base / "project"
    outside = base / "outside"
    (root / "scenarios/act.csv").write_text(
        "instance,tag,a,b,c,d\n"
        f"A,A,../../outside/evil.txt,{outside}/evil.txt,{{runs}}/../../outside/x,"
        "runs/../../outside/y\n", encoding="utf-8")
    before = snapshot(base)
    done = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    assert done.returncode == 0, done.stdout + done.stderr
    after = snapshot(base)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and all(p.startswith("project/runs/") or p in ("project/runs", "project")
                           or p == "project/ran.log" for p in changed), sorted(changed)
    assert sorted(os.listdir(outside)) == ["keep.txt"]


# --- links inside the runs folder are never written through -------------------------------

LINKED = [".ductaflow", "act_config.json", "act_execution_output.txt", "act.ipynb", "act.html",
          "../../.conductor.lock", "../../conductor_results.csv",
          "../../conductor_status_report.html", "../../conductor_results_act.csv",
          "../../.conductor.stages"]
INSIDE = [".ductaflow/record.json", ".ductaflow/history.json", "../../.conductor.stages/act.json"]


def _link_everything(base: Path, names: list[str]) -> None:
    """Each of ``names`` (relative to the instance folder) made a link into outside/."""
    folder = base / "project" / "runs" / "act" / "A"
    for n, name in enumerate(names):
        path = Path(os.path.normpath(folder / name))
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        target = base / "outside" / f"target{n}"
        if "." not in name.rsplit("/", 1)[-1].lstrip("."):  # a folder
            target.mkdir()
        else:
            target.write_text("outside\n", encoding="utf-8")
        path.symlink_to(target)


@pytest.mark.parametrize(("mode", "inside"), [("script", "folders"), ("notebook", "folders"),
                                              ("script", "files in folders")])
def test_links_where_the_engine_keeps_its_files_are_replaced_never_written_through(
        base, mode, inside):
    """Every file and folder the engine writes in an instance folder or at the top of
    the runs folder, made a link to outside/: the run is green, outside/ unchanged, the
    engine's files are real files again."""
    root = base / "project"
    names = LINKED if inside == "folders" else INSIDE
    _link_everything(base, names)
    outside = snapshot(base / "outside")
    done = conduct_cli(root, "scenarios/act.csv", "--mode", mode, "--force", "--html")
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(base / "outside") == outside
    folder = root / "runs" / "act" / "A"
    for name in names:
        path = Path(os.path.normpath(folder / name))
        if name == "act.ipynb" and mode == "script" or name == "act.html" and mode == "script":
            continue
        assert not path.is_symlink(), name
    assert json.loads((folder / ".ductaflow" / "record.json").read_text())["status"] == "success"


def test_links_a_flow_makes_where_the_engine_writes_after_it_are_replaced(base):
    """The flow itself leaves links where the engine writes once it ends (the executed
    notebook, its HTML, the bookkeeping folder's files)."""
    root = base / "project"
    outside = base / "outside"
    for n in range(3):
        (outside / f"t{n}").write_text("outside\n", encoding="utf-8")
    (root / "flows" / "linker.py").write_text(f'''# %% tags=["parameters"]
config = {{}}
# %%
import json
import os
for n, name in enumerate(["linker.ipynb", "linker.html", ".ductaflow/history.json"]):
    if os.path.lexists(name):
        os.remove(name)
    os.symlink({str(outside)!r} + f"/t{{n}}", name)
''', encoding="utf-8")
    (root / "scenarios" / "linker.csv").write_text("instance\nA\n", encoding="utf-8")
    before = snapshot(outside)
    done = conduct_cli(root, "scenarios/linker.csv", "--html")
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(outside) == before
    folder = root / "runs" / "linker" / "A"
    assert not any(p.is_symlink() for p in (folder / "linker.ipynb", folder / "linker.html",
                                            folder / ".ductaflow" / "history.json"))
