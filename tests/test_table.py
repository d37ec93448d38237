"""Reading scenario tables: CSV, Excel (both readers) and DataFrames, typed alike."""

from __future__ import annotations

import datetime
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ductaflow.errors import Location, TableError, UsageError
from ductaflow.tables import workbooks
from ductaflow.tables.grids import BLANK, typed_text
from ductaflow.tables.reading import grid, read_tables

ENGINES = ["calamine", "openpyxl"]


# ---------------------------------------------------------------- helpers


def write_csv(folder: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def write_xlsx(path: Path, sheets: dict[str, list[list]], hidden: tuple[str, ...] = (),
               patches: dict[bytes, bytes] | None = None) -> str:
    """A workbook written by openpyxl; ``patches`` edit the first sheet's XML (cached values)."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if name in hidden:
            sheet.sheet_state = "hidden"
    workbook.save(path)
    if patches:
        patch_member(path, "xl/worksheets/sheet1.xml", patches)
    return str(path)


def patch_member(path: Path, member: str, patches: dict[bytes, bytes]) -> None:
    with zipfile.ZipFile(path) as source:
        items = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in items:
            if info.filename == member:
                for old, new in patches.items():
                    assert old in data, old
                    data = data.replace(old, new)
            target.writestr(info, data)


def only_table(sources, **options):
    tables = read_tables(sources, **options)
    assert len(tables) == 1
    return tables[0]


def error_of(sources, **options) -> TableError:
    with pytest.raises(TableError) as caught:
        read_tables(sources, **options)
    return caught.value


# ---------------------------------------------------------------- one table, four forms

HEADERS = ["instance", "year", "growth", "flag", "code", "label", "zones", "start", "when",
           "pop", "doubled", "# note", "Enabled"]
CSV = (
    "instance,year,growth,flag,code,label,zones,start,when,pop,doubled,# note,Enabled\n"
    'north,2030,0.02,TRUE,00123,NA,"[""a"", ""b""]",2030-01-31,2030-01-31T12:00:00,1000,4060,'
    "hi,yes\n"
    ',,,,,,,,,,,only a comment,\n'
    'south,2030.0,1e3,false,007,nan,"{""k"": 1}",2030-02-01,2030-02-01T06:30:00,,4062,,0\n'
)
EXCEL_ROWS = [
    HEADERS,
    ["north", 2030, 0.02, True, "00123", "NA", '["a", "b"]', datetime.date(2030, 1, 31),
     datetime.datetime(2030, 1, 31, 12), 1000, "=B2*2", "hi", "yes"],
    [None] * 11 + ["only a comment", None],
    ["south", 2030.0, 1e3, False, "007", "nan", '{"k": 1}', datetime.date(2030, 2, 1),
     datetime.datetime(2030, 2, 1, 6, 30), None, "=B4*2+2", None, 0],
]
CACHED = {b"<f>B2*2</f><v />": b"<f>B2*2</f><v>4060</v>",
          b"<f>B4*2+2</f><v />": b"<f>B4*2+2</f><v>4062</v>"}
EXPECTED = [
    {"instance": "north", "year": 2030, "growth": 0.02, "flag": True, "code": "00123",
     "label": "NA", "zones": ["a", "b"], "start": "2030-01-31", "when": "2030-01-31T12:00:00",
     "pop": 1000, "doubled": 4060},
    {"instance": "south", "year": 2030, "growth": 1000, "flag": False, "code": "007",
     "label": "nan", "zones": {"k": 1}, "start": "2030-02-01", "when": "2030-02-01T06:30:00",
     "doubled": 4062},
]


def dataframe() -> pd.DataFrame:
    return pd.DataFrame({
        "instance": ["north", "south"], "year": [2030, 2030.0], "growth": [0.02, 1e3],
        "flag": [True, False], "code": ["00123", "007"], "label": ["NA", "nan"],
        "zones": ['["a", "b"]', '{"k": 1}'],
        "start": pd.to_datetime(["2030-01-31", "2030-02-01"]),
        "when": pd.to_datetime(["2030-01-31 12:00", "2030-02-01 06:30"]),
        "pop": [1000, None], "doubled": [4060, 4062], "# note": ["hi", None],
        "Enabled": ["yes", 0],
    })


def summary(tab):
    return [(row.values, row.enabled, row.line) for row in tab.rows]


def test_the_same_table_reads_the_same_from_csv_excel_and_dataframe(tmp_path):
    from_csv = only_table([write_csv(tmp_path, "prep.csv", CSV)])
    xlsx = write_xlsx(tmp_path / "t.xlsx", {"prep": EXCEL_ROWS}, patches=CACHED)
    from_calamine = only_table([xlsx], engine="calamine")
    from_openpyxl = only_table([xlsx], engine="openpyxl")
    from_frame = only_table([dataframe()], stage="prep")

    assert [row.values for row in from_csv.rows] == EXPECTED
    assert [row.enabled for row in from_csv.rows] == [True, False]
    assert [row.line for row in from_csv.rows] == [2, 4]
    assert summary(from_calamine) == summary(from_openpyxl) == summary(from_csv)
    assert [(values, enabled) for values, enabled, _ in summary(from_frame)] == [
        (values, enabled) for values, enabled, _ in summary(from_csv)]
    assert type(from_calamine.rows[0].values["year"]) is int
    for tab in (from_csv, from_calamine, from_openpyxl, from_frame):
        assert tab.stage == "prep"
        assert tab.headers == tuple(h.lower() for h in HEADERS if not h.startswith("#"))


def test_rows_know_where_they_come_from(tmp_path):
    csv_table = only_table([write_csv(tmp_path, "prep.csv", CSV)])
    row = csv_table.rows[1]
    assert (row.file, row.sheet, row.stage, row.line) == (str(tmp_path / "prep.csv"), None,
                                                          "prep", 4)
    assert row.columns["instance"] == "1" and row.columns["doubled"] == "11"
    assert "# note" not in row.columns

    xlsx = write_xlsx(tmp_path / "t.xlsx", {"prep": EXCEL_ROWS}, patches=CACHED)
    row = only_table([Path(xlsx)]).rows[1]
    assert (row.file, row.sheet, row.line) == (xlsx, "prep", 4)
    assert row.columns["doubled"] == "K" and row.columns["enabled"] == "M"

    frame_row = only_table([dataframe()], stage="prep").rows[0]
    assert (frame_row.file, frame_row.sheet, frame_row.line) == ("<DataFrame>", None, 2)


# ---------------------------------------------------------------- typing


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2030", 2030), ("-5", -5), ("+5", 5), ("0", 0), ("2030.0", 2030), ("0.02", 0.02),
        ("1e3", 1000), ("-1.5", -1.5), (".5", 0.5), ("007", "007"), ("00123", "00123"),
        ("-007", "-007"), ("00.5", "00.5"), ("TRUE", True), ("False", False),
        ("NA", "NA"), ("nan", "nan"), ("None", "None"), ("null", "null"), ("inf", "inf"),
        ("1e999", "1e999"), ("1_000", "1_000"), ("٣", "٣"), ("  north  ", "north"),
        ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("{scenario}_{year}", "{scenario}_{year}"),
        ("[NaN]", "[NaN]"), ("[1,", "[1,"), ("1e20", 1e20), ("9007199254740993.0", 2.0**53),
    ],
)
def test_text_cells_are_typed(text, value):
    result = typed_text(text)
    assert result == value and type(result) is type(value)


def test_blank_text_is_not_set():
    assert typed_text("   ") is BLANK


def test_excel_values_are_typed(tmp_path):
    rows = [["instance", "text_year", "text_bool", "time", "duration", "big", "half"],
            ["a", "2030", "true", datetime.time(12, 30), datetime.timedelta(hours=26),
             1e20, 2.5]]
    xlsx = write_xlsx(tmp_path / "t.xlsx", {"s": rows})
    for engine in ENGINES:
        values = only_table([xlsx], engine=engine).rows[0].values
        assert values == {"instance": "a", "text_year": 2030, "text_bool": True,
                          "time": "12:30:00", "duration": "26:00:00", "big": 1e20, "half": 2.5}


def test_dataframe_missing_values_are_not_set_and_numpy_becomes_python():
    frame = pd.DataFrame({
        "instance": ["a", "b"],
        "n": pd.array([1, None], dtype="Int64"),
        "t": pd.to_datetime(["2030-01-01", None]),
        "s": ["x", None],
        "f": [float("nan"), 2.0],
        "obj": [[1, 2], None],
    })
    rows = only_table([frame], stage="s").rows
    assert rows[0].values == {"instance": "a", "n": 1, "t": "2030-01-01", "s": "x",
                              "obj": [1, 2]}
    assert rows[1].values == {"instance": "b", "f": 2}
    assert type(rows[0].values["n"]) is int


def test_an_int_column_with_blanks_stays_int(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "instance,pop\na,1\nb,\nc,3\n")])
    assert [row.values.get("pop") for row in tab.rows] == [1, None, 3]
    assert "pop" not in tab.rows[1].values


# ---------------------------------------------------------------- CSV specifics


def test_semicolon_csv(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", 'instance;note\na;"x; y"\n')])
    assert tab.rows[0].values == {"instance": "a", "note": "x; y"}


def test_semicolon_inside_quotes_does_not_make_a_semicolon_csv(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", '"a;b;c",instance\n1,x\n')])
    assert tab.rows[0].values == {"a;b;c": 1, "instance": "x"}


def test_bom_and_crlf_are_tolerated(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "\ufeffinstance,x\r\na,1\r\n")])
    assert tab.headers == ("instance", "x")
    assert tab.rows[0].values == {"instance": "a", "x": 1}


def test_a_cp1252_file_is_refused_naming_the_line(tmp_path):
    path = write_csv(tmp_path, "s.csv", "instance,city\na,Malmo\nb,Malmö\n", encoding="cp1252")
    error = error_of([path])
    assert error.location.file == path and error.location.row == 3
    assert "UTF-8" in error.hint and "save it as UTF-8" in str(error)


def test_a_multiline_record_has_the_line_it_starts_on(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", 'instance,note\na,"two\nlines"\nb,x\n')])
    assert [row.line for row in tab.rows] == [2, 4]
    assert tab.rows[0].values["note"] == "two\nlines"


def test_a_row_with_more_cells_than_headers_is_refused(tmp_path):
    error = error_of([write_csv(tmp_path, "s.csv", "instance,x\na,1\nb,2,3\n")])
    assert (error.location.row, error.location.column) == (3, "3")
    assert "without a header" in error.message


def test_short_rows_and_trailing_empty_cells_are_blanks(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "instance,x,y\na\nb,1,,,\n")])
    assert [row.values for row in tab.rows] == [{"instance": "a"}, {"instance": "b", "x": 1}]


def test_blank_rows_are_skipped(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "\ninstance,x\n\na,1\n , \n,,\nb,2\n")])
    assert [(row.line, row.values["instance"]) for row in tab.rows] == [(4, "a"), (7, "b")]


# ---------------------------------------------------------------- headers and rows


def test_duplicate_headers_are_refused_naming_both_columns(tmp_path):
    error = error_of([write_csv(tmp_path, "s.csv", "instance,growth,Growth\na,1,2\n")])
    assert "2 (growth) and 3 (Growth)" in error.message
    assert error.location.column == "3 (Growth)"


def test_reserved_headers_are_normalised(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", " Instance ,FLOW,ENABLED\na,f.py,no\n")])
    assert tab.headers == ("instance", "flow", "enabled")
    assert tab.rows[0].values == {"instance": "a", "flow": "f.py"}
    assert tab.rows[0].enabled is False


def test_a_missing_instance_column_lists_the_headers(tmp_path):
    path = write_xlsx(tmp_path / "t.xlsx", {"prep": [["name", "x"], ["a", 1]]})
    error = error_of([path])
    assert "no 'instance' column" in error.message
    assert error.location.sheet == "prep"
    assert "'name', 'x'" in error.hint


@pytest.mark.parametrize("text", ["", "\n\n", "instance,x\n", "instance,x\n,\n\n"])
def test_a_table_without_rows_is_refused(tmp_path, text):
    error = error_of([write_csv(tmp_path, "s.csv", text)])
    assert "no rows" in error.message


def test_comment_columns_are_left_out(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "instance,#note,# other,x\na,hi,,1\n")])
    assert tab.headers == ("instance", "x")
    assert tab.rows[0].values == {"instance": "a", "x": 1}


def test_a_blank_header_over_data_is_refused_and_without_data_ignored(tmp_path):
    tab = only_table([write_csv(tmp_path, "s.csv", "instance,,x\na,,1\n")])
    assert tab.rows[0].values == {"instance": "a", "x": 1}
    error = error_of([write_csv(tmp_path, "t.csv", "instance,,x\na,oops,1\n")])
    assert (error.location.row, error.location.column) == (2, "2")


def test_a_blank_instance_is_refused(tmp_path):
    error = error_of([write_csv(tmp_path, "s.csv", "x,instance\n1,\n")])
    assert (error.location.row, error.location.column) == (2, "2 (instance)")


@pytest.mark.parametrize(
    ("cell", "enabled"),
    [("", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True), ("y", True),
     ("FALSE", False), ("false", False), ("0", False), ("no", False), ("N", False),
     ("off", False)],
)
def test_enabled(tmp_path, cell, enabled):
    row = only_table([write_csv(tmp_path, "s.csv", f"instance,enabled\na,{cell}\n")]).rows[0]
    assert row.enabled is enabled
    assert "enabled" not in row.values


@pytest.mark.parametrize("engine", ENGINES)
def test_excel_enabled_booleans_and_numbers(tmp_path, engine):
    rows = [["instance", "enabled"], ["a", False], ["b", True], ["c", 0], ["d", 1.0], ["e"]]
    tab = only_table([write_xlsx(tmp_path / "t.xlsx", {"s": rows})], engine=engine)
    assert [row.enabled for row in tab.rows] == [False, True, False, True, True]


def test_an_unrecognised_enabled_is_refused_naming_the_cell(tmp_path):
    error = error_of([write_csv(tmp_path, "s.csv", "instance,x,enabled\na,1,maybe\n")])
    assert (error.location.row, error.location.column) == (2, "3 (enabled)")
    assert "'maybe'" in error.message


# ---------------------------------------------------------------- Excel specifics


@pytest.mark.parametrize("engine", ENGINES)
def test_every_visible_sheet_is_a_stage_and_hidden_ones_are_ignored(tmp_path, engine):
    path = write_xlsx(tmp_path / "t.xlsx", {
        "prep": [["instance"], ["a"]],
        "secret": [["nothing"], ["here"]],
        "model": [["instance", "x"], ["b", 1]],
    }, hidden=("secret",))
    tables = read_tables([path], engine=engine)
    assert [(t.stage, t.sheet) for t in tables] == [("prep", "prep"), ("model", "model")]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_formula_without_a_cached_value_is_refused_naming_the_cell(tmp_path, engine):
    path = write_xlsx(tmp_path / "t.xlsx", {"prep": [["instance", "x", "y"], ["a", 2, "=B2*2"]]})
    error = error_of([path], engine=engine)
    assert error.location == Location(path, "prep", 2, "C (y)")
    assert "no saved value" in error.message and "recalculate" in error.hint


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cached_excel_error_is_refused(tmp_path, engine):
    path = write_xlsx(tmp_path / "t.xlsx", {"prep": [["instance", "x"], ["a", "=1/0"]]},
                      patches={b'<c r="B2"><f>1/0</f><v />': b'<c r="B2" t="e"><f>1/0</f>'
                                                              b"<v>#DIV/0!</v>"})
    error = error_of([path], engine=engine)
    assert (error.location.row, error.location.column) == (2, "B (x)")
    assert "#DIV/0!" in error.message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='<>/:="\' \tfextrcv1', max_size=30))
def test_the_quick_scan_for_bad_cells_misses_no_formula_or_error(xml):
    raw = xml.encode()
    if workbooks._FORMULA_OR_ERROR.search(raw):
        assert workbooks._may_hold_bad_cells(raw)


def test_the_quick_scan_for_bad_cells_passes_plain_cells():
    assert not workbooks._may_hold_bad_cells(b'<row r="2"><c r="A2" t="inlineStr"><is><t>{a}_f'
                                         b'</t></is></c><c r="B2" t="n"><v>2030</v></c></row>')


@pytest.mark.parametrize("engine", ENGINES)
def test_a_formula_in_a_comment_column_does_not_matter(tmp_path, engine):
    path = write_xlsx(tmp_path / "t.xlsx", {"p": [["instance", "# check"], ["a", "=1+1"]]})
    assert only_table([path], engine=engine).rows[0].values == {"instance": "a"}


@pytest.mark.parametrize("engine", ENGINES)
def test_merged_cells_keep_their_value_in_the_top_left_cell_only(tmp_path, engine):
    path = tmp_path / "t.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "s"
    for row in [["instance", "x"], ["a", 5], ["b", None]]:
        sheet.append(row)
    sheet.merge_cells("B2:B3")
    workbook.save(path)
    tab = only_table([path], engine=engine)
    assert [row.values for row in tab.rows] == [{"instance": "a", "x": 5}, {"instance": "b"}]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_table_below_blank_rows_keeps_excel_row_numbers(tmp_path, engine):
    path = tmp_path / "t.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet["B3"], sheet["C3"], sheet["B5"], sheet["C5"] = "instance", "x", "a", 1
    workbook.save(path)
    row = only_table([path], engine=engine).rows[0]
    assert (row.line, row.columns) == (5, {"instance": "B", "x": "C"})


def test_a_zip_bomb_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (4 * 2**20))

    def must_not_run(*args):
        raise AssertionError("parsed a zip bomb")

    monkeypatch.setattr(workbooks, "_calamine_cells", must_not_run)
    monkeypatch.setattr(workbooks, "_openpyxl_cells", must_not_run)
    monkeypatch.setattr(workbooks, "_worksheets", must_not_run)
    error = error_of([path])
    assert "zip bomb" in error.message and "sheet1.xml" in error.message


def test_a_workbook_that_unpacks_too_large_is_refused(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "t.xlsx", {"s": [["instance"], ["a"]]})
    monkeypatch.setattr(workbooks, "MAX_UNZIPPED_BYTES", 1000)
    assert "zip bomb" in error_of([path]).message


def test_a_file_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "t.xlsx", {"s": [["instance"], ["a"]]})
    monkeypatch.setattr(workbooks, "MAX_XLSX_BYTES", 100)
    assert "MB" in error_of([path]).message


def test_openpyxl_parses_with_defusedxml():
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_that_is_not_a_workbook_is_refused_naming_it(tmp_path, engine):
    path = tmp_path / "t.xlsx"
    path.write_text("instance\na\n")
    error = error_of([path], engine=engine)
    assert error.location.file == str(path) and "xlsx" in error.message


@pytest.mark.parametrize("name", ["missing.csv", "missing.xlsx"])
def test_a_missing_file_is_refused_naming_it(tmp_path, name):
    error = error_of([str(tmp_path / name)])
    assert error.message == "file not found" and error.location.file == str(tmp_path / name)


def test_an_unknown_file_type_is_refused(tmp_path):
    assert "unsupported" in error_of([str(tmp_path / "t.xls")]).message


def test_reading_a_csv_imports_neither_pandas_nor_openpyxl(tmp_path):
    path = write_csv(tmp_path, "s.csv", CSV)
    code = (
        "import sys; from ductaflow.tables.reading import read_tables\n"
        f"read_tables([{path!r}])\n"
        "heavy = {'pandas', 'openpyxl', 'python_calamine', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---------------------------------------------------------------- arguments


def test_a_dataframe_needs_a_stage():
    with pytest.raises(UsageError, match="stage"):
        read_tables([dataframe()])


def test_stage_is_refused_for_files(tmp_path):
    with pytest.raises(UsageError, match="stage"):
        read_tables([write_csv(tmp_path, "s.csv", "instance\na\n")], stage="other")


def test_a_single_source_needs_no_list(tmp_path):
    assert only_table(write_csv(tmp_path, "s.csv", "instance\na\n")).stage == "s"


def test_an_unsafe_stage_name_is_refused():
    assert "stage name '../up' contains '/'" in error_of([dataframe()], stage="../up").message


def test_an_unknown_engine_is_refused(tmp_path):
    with pytest.raises(UsageError, match="engine"):
        read_tables([], engine="xlrd")


def test_duplicate_dataframe_columns_are_refused():
    frame = pd.DataFrame([["a", 1, 2]], columns=["instance", "x", "X"])
    assert "duplicate" in error_of([frame], stage="s").message


# ---------------------------------------------------------------- grid


def test_grid_is_the_cartesian_product_first_dimension_slowest():
    frame = grid(instance="{scenario}_{year}", scenario=["north", "south"], year=[2030, 2040],
                 growth=0.02, zones=[["a", "b"]])
    assert list(frame.columns) == ["instance", "scenario", "year", "growth", "zones"]
    assert frame[["scenario", "year"]].values.tolist() == [
        ["north", 2030], ["north", 2040], ["south", 2030], ["south", 2040]]
    assert set(frame["instance"]) == {"{scenario}_{year}"}
    assert frame["zones"].tolist() == [["a", "b"]] * 4


def test_a_grid_reads_back_as_a_table():
    tab = only_table([grid(instance="{s}_{y}", s=("a", "b"), y=range(2030, 2032))], stage="p")
    assert [row.values for row in tab.rows][-1] == {"instance": "{s}_{y}", "s": "b", "y": 2031}
    assert tab.headers == ("instance", "s", "y")


def test_grid_round_trips_through_excel(tmp_path):
    path = tmp_path / "g.xlsx"
    grid(instance="{s}", s=["a", "b"], growth=0.5).to_excel(path, sheet_name="prep", index=False)
    tab = only_table([path])
    assert [row.values for row in tab.rows] == [
        {"instance": "{s}", "s": "a", "growth": 0.5}, {"instance": "{s}", "s": "b", "growth": 0.5}]


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: grid(scenario=["a"]), "instance"),
        (lambda: grid(instance="{a}", a=[]), "empty"),
        (lambda: grid(instance="{a.b}", a=[1]), "attribute"),
        (lambda: grid(instance="{a}", a={1, 2}), "set"),
    ],
)
def test_grid_errors(call, words):
    with pytest.raises(UsageError, match=words):
        call()


def test_grid_takes_arrays_and_numpy_scalars():
    import numpy as np

    frame = grid(instance="{y}", y=np.arange(2030, 2033), k=np.float64(0.5))
    assert frame["y"].tolist() == [2030, 2031, 2032] and frame["k"].tolist() == [0.5] * 3


def test_a_source_that_is_neither_a_path_nor_a_dataframe_is_refused():
    with pytest.raises(UsageError, match="dict"):
        read_tables([{"instance": ["a"]}])


def test_without_calamine_excel_is_read_with_openpyxl(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "t.xlsx", {"prep": EXCEL_ROWS}, patches=CACHED)
    monkeypatch.setitem(sys.modules, "python_calamine", None)  # import fails
    assert summary(only_table([path])) == summary(only_table([path], engine="openpyxl"))
