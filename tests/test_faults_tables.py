"""Bad scenario tables: exit 2, one line naming file/sheet/row/column, nothing on disk changed.

Every case runs the real command line (``ductaflow.cli.commands.main``, in-process for speed; a
few in a subprocess) in a project that already ran once, and compares the whole
project tree (paths, sizes, mtimes) before and after. Cells that look odd but are
valid (dates, booleans, ``00123``, an integer column with a blank, ``NA``) must reach
the flow with the right type, from CSV and from Excel alike.

Malicious workbooks (zip bombs, entity expansion, external entities) must be refused
before any XML is expanded, by both Excel readers.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from ductaflow.cli.commands import main
from ductaflow.errors import TableError
from ductaflow.planning.planner import plan
from ductaflow.tables.reading import read_tables

from .conftest import REPO, run_cli
from .test_faults_common import conduct_cli, make_project, one_line_error, snapshot

# --- a project that ran once ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("tables") / "project",
                        {"act": "instance,tag\nA,A\n"})
    done = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def root(ran_once, tmp_path):
    return shutil.copytree(ran_once, tmp_path / "project", symlinks=True)


def refused(root: Path, table: str, capsys, *extra: str) -> str:
    """Run ``conduct TABLE`` in-process; assert exit 2, one error line and an unchanged
    project tree; return the line."""
    before = snapshot(root)
    cwd, handler = os.getcwd(), signal.getsignal(signal.SIGINT)
    capsys.readouterr()
    os.chdir(root)
    try:
        code = main(["conduct", table, "--mode", "script", *extra])
    finally:
        os.chdir(cwd)
        signal.signal(signal.SIGINT, handler)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out + err
    assert snapshot(root) == before, "a refused table changed something on disk"
    return one_line_error(err)


def csv_case(root: Path, name: str, text: str | bytes) -> str:
    path = root / "scenarios" / name / "act.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return f"scenarios/{name}/act.csv"


def xlsx_case(root: Path, name: str, sheets: dict[str, list[list]], *,
              edit=None) -> str:
    """A workbook of ``sheets`` (name -> rows) written by openpyxl; ``edit(book)`` may
    merge cells, hide sheets, add formulas before it is saved."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for sheet, rows in sheets.items():
        ws = book.create_sheet(sheet)
        for row in rows:
            ws.append(row)
    if edit is not None:
        edit(book)
    path = root / "scenarios" / f"{name}.xlsx"
    book.save(path)
    return f"scenarios/{name}.xlsx"


# --- CSV -------------------------------------------------------------------------------------

CSV_BAD = {
    # name: (table text, the words the error must contain, after "error: <file>")
    "empty": (b"", ": the table is empty"),
    "blank-lines-only": ("\n\n , \n", ": the table is empty"),
    "header-only": ("instance,tag\n", ": the table has headers but no rows"),
    "header-and-blank-rows": ("instance,tag\n,\n\n", ": the table has headers but no rows"),
    "no-instance-column": ("name,tag\nA,a\n", ", row 1: no 'instance' column"),
    "duplicate-instance": ("instance,tag\nA,a\nB,b\nA,c\n",
                           ", row 4, column 1 (instance): instance 'A' is already defined"),
    "duplicate-instance-case": ("instance,tag\nnorth,a\nNorth,b\n",
                                ", row 3, column 1 (instance): instance 'North' is already"),
    "duplicate-instance-rendered": ("instance,tag\n{tag},x\nx,y\n",
                                    ", row 3, column 1 (instance): instance 'x' is already"),
    "duplicate-header": ("instance,tag,tag\nA,a,b\n", ", row 1, column 3 (tag): duplicate"),
    "duplicate-header-case": ("instance,tag,TAG\nA,a,b\n", ", row 1, column 3 (TAG): dupl"),
    "duplicate-reserved-header": ("instance,Instance\nA,B\n", ", row 1, column 2 (instance)"),
    "ragged-long-row": ("instance,tag\nA,a\nB,b,extra\n",
                        ", row 3, column 3: value 'extra' in a column without a header"),
    "cp1252": ("instance,tag\nA,a\nB,caf\xe9\n".encode("cp1252"),
               ", row 3: not valid UTF-8 (byte 0xe9 at line 3)"),
    "blank-instance": ("instance,tag\nA,a\n,b\n", ", row 3, column 1 (instance): the instance "
                                                  "name is blank"),
    "bad-enabled": ("instance,tag,enabled\nA,a,maybe\n", ", row 2, column 3 (enabled)"),
    "unknown-field": ("instance,tag\nA,{nope}\n", ", row 2, column 2 (tag): unknown field"),
    "no-flow": ("instance,flow\nA,flows/none.py\n", ", row 2, column 2 (flow): flow"),
    "dangling": ("instance,input\nA,runs/act/Z/x.csv\n",
                 ", row 2, column 2 (input): runs/act/Z/x.csv points into instance act/Z"),
    "cycle": ("instance,input\nA,runs/act/B/x\nB,runs/act/A/x\n",
              ", row 2: dependency cycle: act/A -> act/B -> act/A"),
    "stage-column": ("instance,stage\nA,x\n", ", row 1, column 2 (stage)"),
    # issue 20: structure that used to lose data, or the one line
    "dotted-then-plain": ("instance,a.b,a\nA,1,2\n",
                          ", row 2, column 3 (a): column 'a' sets 'a' to 2, and column 'a.b'"),
    "plain-then-dotted": ("instance,a,a.b\nA,2,1\n",
                          ", row 2, column 2 (a): column 'a' sets 'a' to 2, and column 'a.b'"),
    "deeper-then-shallower": ("instance,x.a.b,x.a\nA,1,text\n",
                              ", row 2, column 3 (x.a): column 'x.a' sets 'x.a' to text"),
    "header-nfc-nfd": ("instance,caf\u00e9,cafe\u0301\nA,1,2\n",
                       ", row 1, column 3 (cafe\u0301): duplicate column"),
    "header-line-break": ('instance,"to\ntal"\nA,1\n',
                          ", row 1, column 2: column header 'to\\ntal' holds a line break"),
    "header-escape": ("instance,\x1b[31mred\nA,1\n",
                      ", row 1, column 2: column header '\\x1b[31mred' holds a line break"),
    "rendered-megabytes": ("instance,big,huge\nA," + "x" * 30_000 + ",{big}{big}{big}\n",
                           ", row 2, column 3 (huge): the template renders to 90,000 "
                           "characters"),
}


@pytest.mark.parametrize("case", CSV_BAD)
def test_a_bad_csv_table_is_refused_on_one_line_and_changes_nothing(root, capsys, case):
    text, words = CSV_BAD[case]
    table = csv_case(root, case, text)
    line = refused(root, table, capsys)
    assert line.startswith(f"error: {table}{words}"), line


def test_a_row_setting_an_object_and_a_key_inside_it_keeps_both(root):
    """``a`` as a JSON object and ``a.b`` merge, in either column order."""
    for name, text in (("object-first", 'instance,a,a.b\nA,"{""c"": 1}",2\n'),
                       ("dotted-first", 'instance,a.b,a\nA,2,"{""c"": 1}"\n')):
        tables = read_tables(root / csv_case(root, name, text))
        (instance,) = plan(tables, project_root=root).instances
        assert instance.config["a"] == {"b": 2, "c": 1}, name


def test_non_finite_numbers_of_a_dataframe_reach_the_config_as_json(root):
    """NaN is blank (not set), inf the text a CSV saved from the frame would hold; NaN
    inside a list is null; the saved config is valid JSON (no NaN, no Infinity)."""
    import pandas as pd

    frame = pd.DataFrame({"instance": ["A", "B"], "x": [float("inf"), float("nan")],
                          "y": [[1.0, float("nan")], [2, 3]]})
    (table,) = read_tables(frame, stage="act")
    assert table.rows[0].values["x"] == "inf" and "x" not in table.rows[1].values
    assert table.rows[0].values["y"] == [1, None]
    config = plan([table], project_root=root).instances[0].config
    json.loads(json.dumps(config), parse_constant=pytest.fail)
    frame["y"] = [[1.0, float("-inf")], [2, 3]]
    with pytest.raises(TableError, match=r"<DataFrame>, row 2, column C \(y\): -inf inside"):
        read_tables(frame, stage="act")


def test_a_base_config_holding_nan_or_infinity_is_refused(root, capsys):
    (root / "config" / "flows").mkdir(parents=True, exist_ok=True)
    (root / "config" / "flows" / "act.json").write_text('{"x": NaN}', encoding="utf-8")
    line = refused(root, "scenarios/act.csv", capsys)
    assert "config/flows/act.json: invalid JSON: NaN is not JSON" in line, line


def test_a_quote_never_closed_is_refused_naming_the_row_it_opens_on(root, capsys):
    table = csv_case(root, "unclosed-quote", 'instance,tag\nA,"open\nB,b\nC,c\n')
    line = refused(root, table, capsys)
    assert line.startswith(f"error: {table}, row 2"), line


@pytest.mark.parametrize("case", ["missing", "a-folder", "wrong-type"])
def test_a_missing_or_unreadable_table_is_refused_and_changes_nothing(root, capsys, case):
    if case == "a-folder":
        (root / "scenarios/folder.csv").mkdir()
        table, words = "scenarios/folder.csv", ": cannot read the file"
    elif case == "wrong-type":
        (root / "scenarios/act.txt").write_text("instance\nA\n", encoding="utf-8")
        table, words = "scenarios/act.txt", ": unsupported table type '.txt'"
    else:
        table, words = "scenarios/missing.csv", ": file not found"
    assert refused(root, table, capsys).startswith(f"error: {table}{words}")


def test_the_real_command_line_prints_no_traceback_for_bad_tables(root):
    """A subprocess each: what a user's terminal shows (in-process above for speed)."""
    before = snapshot(root)
    for case in ("cp1252", "duplicate-instance-case", "ragged-long-row"):
        table = csv_case(root, case, CSV_BAD[case][0])
        before = snapshot(root)
        done = run_cli("conduct", table, "--mode", "script", cwd=root)
        assert done.returncode == 2 and done.stdout == ""
        assert one_line_error(done.stderr).startswith(f"error: {table}{CSV_BAD[case][1]}")
        assert snapshot(root) == before


# --- Excel -----------------------------------------------------------------------------------


def uncached_formula(book) -> None:
    book["act"]["B3"] = "=1+1"  # openpyxl saves formulas without a cached value


def merge_instance_cells(book) -> None:
    book["act"].merge_cells("A2:A3")


XLSX_BAD = {
    "empty-sheet": ({"act": []}, None, ", sheet 'act': the table is empty"),
    "header-only": ({"act": [["instance", "tag"]]}, None,
                    ", sheet 'act': the table has headers but no rows"),
    "no-instance-column": ({"act": [["name"], ["A"]]}, None,
                           ", sheet 'act', row 1: no 'instance' column"),
    "duplicate-instance-case": ({"act": [["instance"], ["north"], ["NORTH"]]}, None,
                                ", sheet 'act', row 3, column A (instance): instance 'NORTH'"),
    "duplicate-header": ({"act": [["instance", "tag", "Tag"], ["A", 1, 2]]}, None,
                         ", sheet 'act', row 1, column C (Tag): duplicate column"),
    "formula-without-cached-value": ({"act": [["instance", "tag"], ["A", 1], ["B", 2]]},
                                     uncached_formula,
                                     ", sheet 'act', row 3, column B (tag): the formula has no "
                                     "saved value"),
    "merged-instance-cells": ({"act": [["instance", "tag"], ["A", 1], [None, 2]]},
                              merge_instance_cells,
                              ", sheet 'act', row 3, column A (instance): the instance name "
                              "is blank"),
}


@pytest.mark.parametrize("case", XLSX_BAD)
def test_a_bad_workbook_is_refused_on_one_line_and_changes_nothing(root, capsys, case):
    sheets, edit, words = XLSX_BAD[case]
    table = xlsx_case(root, case, sheets, edit=edit)
    line = refused(root, table, capsys)
    assert line.startswith(f"error: {table}{words}"), line


def test_a_file_that_is_not_a_workbook_or_is_cut_short_is_refused(root, capsys):
    whole = (root / xlsx_case(root, "whole", {"act": [["instance"], ["A"]]})).read_bytes()
    for name, data in (("text", b"instance\nA\n"), ("half", whole[: len(whole) // 2]),
                       ("empty", b"")):
        (root / f"scenarios/{name}.xlsx").write_bytes(data)
        line = refused(root, f"scenarios/{name}.xlsx", capsys)
        assert line.startswith(f"error: scenarios/{name}.xlsx: not a readable .xlsx"), line


# --- odd but valid cells -------------------------------------------------------------------

VALID_CSV = ("instance,tag,when,flag,code,count,missing,#note\n"
             "\n"
             "A,a,2030-01-31,TRUE,00123,1,NA,x\n"
             ",,,,,,,comment only\n"
             "B,b,2030-02-01,false,0042,,nan,\n"
             "C,c,2030-03-01T12:30:00,True,123,3,null,\n")
EXPECTED = {
    "A": {"tag": "a", "when": "2030-01-31", "flag": True, "code": "00123", "count": 1,
          "missing": "NA"},
    "B": {"tag": "b", "when": "2030-02-01", "flag": False, "code": "0042", "missing": "nan"},
    "C": {"tag": "c", "when": "2030-03-01T12:30:00", "flag": True, "code": 123, "count": 3,
          "missing": "null"},
}


def valid_workbook(book) -> None:
    """Typed cells as Excel stores them; a hidden sheet full of errors is ignored."""
    ws = book["act"]
    ws["C2"] = datetime.date(2030, 1, 31)
    ws["C3"] = datetime.datetime(2030, 2, 1)
    ws["C4"] = datetime.datetime(2030, 3, 1, 12, 30)
    ws["D2"], ws["D3"], ws["D4"] = True, False, True
    ws["F2"], ws["F4"] = 1.0, 3.0  # Excel keeps every number as a float
    ws["E4"] = 123
    hidden = book.create_sheet("hidden")
    hidden.append(["no", "instance", "column"])
    hidden["A2"] = "=1/0"
    hidden.sheet_state = "hidden"


def configs(root: Path, table: str) -> dict[str, dict]:
    found = plan([str(root / table)], project_root=root)
    return {d.instance.name: {k: v for k, v in d.instance.config.items()}
            for d in found.decisions}


def test_dates_booleans_leading_zeros_blanks_and_na_reach_the_flow_typed(root):
    csv_table = csv_case(root, "valid", VALID_CSV)
    rows = [["instance", "tag", "when", "flag", "code", "count", "missing"],
            ["A", "a", None, None, "00123", None, "NA"],
            ["B", "b", None, None, "0042", None, "nan"],
            ["C", "c", None, None, None, None, "null"]]
    xlsx_table = xlsx_case(root, "valid", {"act": rows}, edit=valid_workbook)
    assert configs(root, csv_table) == EXPECTED
    assert configs(root, xlsx_table) == EXPECTED
    done = conduct_cli(root, xlsx_table, "--mode", "script")
    assert done.returncode == 0, done.stdout + done.stderr
    for name, expected in EXPECTED.items():
        saved = json.loads((root / f"runs/act/{name}/act_config.json").read_text("utf-8"))
        assert {k: v for k, v in saved.items() if not k.startswith("_")} == expected


def test_merged_value_cells_keep_the_value_in_the_top_left_cell_only(root):
    table = xlsx_case(root, "merged", {"act": [["instance", "tag"], ["A", "a"], ["B", None]]},
                      edit=lambda book: book["act"].merge_cells("B2:B3"))
    assert configs(root, table) == {"A": {"tag": "a"}, "B": {}}


# --- malicious workbooks ---------------------------------------------------------------------

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)) + "]>")
EXTERNAL = '<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/hostname">]>'
PARTS = ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
         "xl/worksheets/sheet1.xml", "xl/sharedStrings.xml", "xl/styles.xml")


def raw_workbook(path: Path, *, doctype: str = "", into: str = "", use: str = "",
                 sheet_xml: bytes | None = None, hidden: bool = False) -> None:
    """A minimal workbook written by hand: sheet ``act`` with ``instance``/``tag``, A/a,
    shared strings; ``doctype`` is put into part ``into``, ``use`` into its first text."""
    strings = ["instance", "tag", "A", "a"]
    cells = ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
             '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>')
    rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    state = 'state="hidden" ' if hidden else ""
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override '
        'PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.styles+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{package}"><Relationship Id="rId1" Type="{rels}/'
                       'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {NS} xmlns:r="{rels}"><sheets><sheet name="act" '
                           f'sheetId="1" {state}r:id="rId1"/>'
                           '</sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{package}"><Relationship '
        f'Id="rId1" Type="{rels}/worksheet" Target="worksheets/sheet1.xml"/><Relationship '
        f'Id="rId2" Type="{rels}/sharedStrings" Target="sharedStrings.xml"/><Relationship '
        f'Id="rId3" Type="{rels}/styles" Target="styles.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f"<worksheet {NS}><sheetData>{cells}</sheetData></worksheet>",
        "xl/sharedStrings.xml": f'<sst {NS} count="4" uniqueCount="4">'
                                + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>",
        "xl/styles.xml": f"<styleSheet {NS}/>",
    }
    data = {name: (HEAD + text).encode() for name, text in parts.items()}
    if into:
        text = data[into].decode().replace(HEAD, HEAD + doctype, 1)
        if use and into == "xl/sharedStrings.xml":
            text = text.replace("<t>a</t>", f"<t>{use}</t>")
        data[into] = text.encode()
    if sheet_xml is not None:
        data["xl/worksheets/sheet1.xml"] = sheet_xml
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in data.items():
            archive.writestr(name, body)


def test_a_workbook_whose_every_sheet_is_hidden_is_refused(root, capsys):
    raw_workbook(root / "scenarios/hidden.xlsx", hidden=True)
    line = refused(root, "scenarios/hidden.xlsx", capsys)
    assert line.startswith("error: scenarios/hidden.xlsx: the workbook has no visible "), line


def test_the_hand_made_workbook_reads(tmp_path):
    raw_workbook(tmp_path / "ok.xlsx")
    for engine in ("calamine", "openpyxl"):
        (table,) = read_tables(tmp_path / "ok.xlsx", engine=engine)
        assert [r.values for r in table.rows] == [{"instance": "A", "tag": "a"}]


#: Parts the default reader (calamine) never gives to an XML parser that sees the DTD:
#: it ignores a DOCTYPE it need not expand, so the workbook is read, not refused.
#: Parts openpyxl itself refuses, with a message of several lines.


def entity_cases() -> list:
    cases = []
    for kind, doctype, use in (("laughs", LAUGHS, "&lol9;"), ("external", EXTERNAL, "&ext;")):
        for part in PARTS:
            for engine in ("calamine", "openpyxl"):
                cases.append(pytest.param(doctype, use, part, engine,
                                          id=f"{kind}-{part}-{engine}"))
    return cases


@pytest.mark.parametrize("doctype, use, part, engine", entity_cases())
def test_entity_declarations_in_any_part_are_refused_before_parsing(tmp_path, doctype, use,
                                                                    part, engine):
    path = tmp_path / "evil.xlsx"
    raw_workbook(path, doctype=doctype, into=part, use=use)
    with pytest.raises(TableError) as caught:
        read_tables(path, engine=engine)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message


def peak_of_child(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``ductaflow ARGS`` under a wrapper; its peak RSS in KiB (RUSAGE_CHILDREN of
    the wrapper, which has no other child)."""
    wrapper = ("import resource, subprocess, sys\n"
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(done.returncode)\n")
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "ductaflow",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    *lines, peak = done.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout,
                                       "\n".join(lines)), int(peak)


def lying_sizes(data: bytes, member: str, size: int) -> bytes:
    """The zip with ``member``'s uncompressed size claimed to be ``size``, in its local
    header and in the central directory."""
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    out[info.header_offset + 22: info.header_offset + 26] = size.to_bytes(4, "little")
    at = out.find(b"PK\x01\x02")
    while at != -1:
        length = int.from_bytes(out[at + 28: at + 30], "little")
        if out[at + 46: at + 46 + length] == member.encode():
            out[at + 24: at + 28] = size.to_bytes(4, "little")
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


@pytest.mark.parametrize("kind", [
    "ratio",
    "lying-sizes",
    "laughs-in-shared-strings",
])
def test_a_malicious_workbook_is_refused_fast_with_bounded_memory(root, kind):
    path = root / "scenarios/bomb.xlsx"
    rows = '<row r="1"><c r="A1" t="inlineStr"><is><t>instance</t></is></c></row>'
    padding = b" " * (200 << 20)  # 200 MB of spaces: ~200 KB deflated
    sheet = (HEAD + f"<worksheet {NS}><sheetData>{rows}</sheetData>").encode() + padding \
        + b"</worksheet>"
    if kind == "laughs-in-shared-strings":
        raw_workbook(path, doctype=LAUGHS, into="xl/sharedStrings.xml", use="&lol9;")
    else:
        raw_workbook(path, sheet_xml=sheet)
    if kind == "lying-sizes":
        path.write_bytes(lying_sizes(path.read_bytes(), "xl/worksheets/sheet1.xml", 1000))
    assert path.stat().st_size < 2 << 20
    before = snapshot(root)
    done, peak = peak_of_child(["conduct", "scenarios/bomb.xlsx", "--mode", "script"], root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert one_line_error(done.stderr).startswith("error: scenarios/bomb.xlsx: ")
    assert peak < 150 * 1024, f"peak RSS {peak} KiB while refusing"
    assert snapshot(root) == before


# --- control characters in cells never reach a terminal raw ----------------------------------

SHOUTING = '''# %% tags=["parameters"]
config = {}
# %%
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "act")
if config.get("fail"):
    raise ValueError(config["note"])
'''


def test_control_characters_from_cells_are_shown_escaped_on_a_piped_terminal(tmp_path):
    """A cell holding an escape sequence and a line break: the plan, the failure line,
    ``status`` and ``diff`` show them escaped, each on its one line."""
    root = make_project(tmp_path / "project", {"act": 'instance,note,fail\nA,"a\x1b[2Jb\nc",1\n'},
                        flows={})
    (root / "flows" / "act.py").write_text(SHOUTING, encoding="utf-8")
    first = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    assert first.returncode == 1, first.stderr
    (root / "scenarios" / "act.csv").write_text('instance,note,fail\nA,"\x07x\ry",\n',
                                                encoding="utf-8")
    plan_out = conduct_cli(root, "scenarios/act.csv", "--dry-run")
    second = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    status = run_cli("status", cwd=root)
    diff = run_cli("diff", "act/A", cwd=root)
    shown = {"conduct": first.stdout, "dry-run": plan_out.stdout, "second": second.stdout,
             "status": status.stdout, "diff": diff.stdout}
    for name, text in shown.items():
        raw = [c for c in text if not c.isprintable() and c != "\n"]
        assert not raw, (name, raw, text)
    failed = next(line for line in first.stdout.splitlines() if line.startswith("failed"))
    assert "ValueError: a\\x1b[2Jb" in failed, failed
    assert "\\x07x\\ry" in plan_out.stdout, plan_out.stdout
    assert "\\x07x\\ry" in diff.stdout, diff.stdout
