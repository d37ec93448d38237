"""Read scenario tables (CSV files, Excel sheets, DataFrames) into ``Table`` and ``Row``.

Every source becomes a grid of raw cells with the row numbers and column labels a
user sees; one set of rules then finds the headers and types the cells, so the same
table gives the same ``Row.values`` whatever it was saved as:

- blank (empty, whitespace only, None, NaN) -> the key is left out ("not set");
- numbers: integral floats (``2030.0``) -> ``int`` (below 2**53), other floats stay;
- text: ``true``/``false`` in any case -> ``bool``; an integer literal -> ``int``
  unless it has a leading zero (``007`` stays text); a float literal -> number as
  above; ``[...]``/``{...}`` that parses as JSON -> list/dict; anything else ->
  the stripped text (``NA``, ``nan``, ``null`` stay text);
- dates -> ISO text (``2030-01-31``, or ``2030-01-31T12:00:00`` with a time part);
  times -> ``12:30:00``; durations -> ``H:MM:SS`` as Excel shows ``[h]:mm:ss``.

Excel specifics: formulas are read as their cached values; a formula with no cached
value, or a cell holding an Excel error (``#DIV/0!``), is an error. Both readers lose
that distinction (they return a blank), so the sheet XML is scanned for such cells
before the values are read. Merged cells keep their value in the top-left cell only;
the other cells of the range are blank. Hidden sheets are ignored.

pandas is imported only when a DataFrame is passed or ``grid`` is called; nothing
Excel-related is imported for CSV files.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductaflow.errors import Location, TableError, TemplateError, UsageError
from ductaflow.model import Row, Table
from ductaflow.run_folder.names import name_problem
from ductaflow.tables.templating import fields

if TYPE_CHECKING:
    import zipfile

    from pandas import DataFrame

logger = logging.getLogger(__name__)

RESERVED = ("instance", "flow", "enabled")
ENGINES = ("calamine", "openpyxl")
MAX_XLSX_BYTES = 50 * 2**20
MAX_UNZIPPED_BYTES = 500 * 2**20
MAX_RATIO = 100
RATIO_CHECK_FROM = 2**20
"""Zip members smaller than this (uncompressed) are harmless whatever their ratio."""

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
_EXACT_INT_LIMIT = 2**53
_FORMULA_OR_ERROR = re.compile(rb"<(?:\w+:)?f[\s>/]|\st=[\"']e[\"']")
_JSON_OBJECT = re.compile(r"\{\s*[\"}]")
"""How a JSON object starts; ``{scenario}_{year}`` templates never do."""
_MUTABLE = (list, dict)
_UNSEEN = object()
_PIECE = 1 << 20
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_RECALCULATE = "open the workbook in Excel (or LibreOffice), recalculate and save it"


class _Blank:
    """The one value of a blank cell: "not set", left out of ``Row.values``."""

    def __repr__(self) -> str:
        return "BLANK"


BLANK: Any = _Blank()


@dataclass
class _Grid:
    """Raw cells of one stage, with the row numbers and column labels a user sees."""

    file: str
    sheet: str | None
    stage: str
    records: Iterable[tuple[int, Sequence[Any]]]
    label: Callable[[int], str]
    bad_cells: dict[tuple[int, int], str] = field(default_factory=dict)

    def where(self, row: int | None = None, column: int | None = None,
              header: str = "") -> Location:
        shown = None
        if column is not None:
            shown = self.label(column) + (f" ({header})" if header else "")
        return Location(self.file, self.sheet, row, shown)


# ---------------------------------------------------------------- public API


def read_tables(sources: Sequence[str | os.PathLike[str] | DataFrame] | str | os.PathLike[str],
                *, stage: str | None = None, engine: str = "calamine") -> list[Table]:
    """One ``Table`` per CSV file, visible Excel sheet or DataFrame, in the order given.

    ``stage`` names the stage of DataFrames (required for them, refused otherwise);
    ``engine`` picks the Excel reader (``calamine``, falling back to ``openpyxl``
    when python-calamine is not installed).
    """
    if isinstance(sources, (str, os.PathLike)) or _is_dataframe(sources):
        sources = [sources]
    if engine not in ENGINES:
        raise UsageError(f"unknown Excel engine {engine!r}", hint="use calamine or openpyxl")
    frames = [src for src in sources if _is_dataframe(src)]
    if frames and stage is None:
        raise UsageError("a DataFrame needs a stage name", hint="pass stage='...'")
    if stage is not None and not frames:
        raise UsageError("stage= names the stage of a DataFrame only",
                         hint="a CSV file's stage is its file name, an Excel sheet's its name")
    grids: list[_Grid] = []
    for src in sources:
        if _is_dataframe(src):
            grids.append(_dataframe_grid(src, stage or ""))
        else:
            grids.extend(_file_grids(src, engine))
    return [_build_table(grid) for grid in grids]


def grid(instance: str | None = None, **dimensions: Any) -> DataFrame:
    """A scenario table: every combination of the list-valued ``dimensions``.

    The first dimension varies slowest. Scalars (and strings, dicts) are constant
    columns; wrap a list in a list to make it a constant. ``instance`` is the
    template of the instance names, e.g. ``"{scenario}_{year}"``, put first.
    """
    if not isinstance(instance, str) or not instance.strip():
        raise UsageError("grid() needs instance=, the template of the instance names",
                         hint='e.g. grid(instance="{scenario}_{year}", scenario=[...], year=[...])')
    try:
        fields(instance)
    except TemplateError as error:
        raise UsageError(f"instance template: {error.message}", hint=error.hint) from error
    axes = {name: _axis(name, value) for name, value in dimensions.items()}
    import pandas as pd

    frame = pd.DataFrame(list(itertools.product(*axes.values())), columns=list(axes))
    frame.insert(0, "instance", instance)
    return frame


def _axis(name: str, value: Any) -> list[Any]:
    """The values of one dimension: a list, tuple, range or array; anything else is constant."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series and Index
        value = value.tolist()
    if isinstance(value, (set, frozenset)):
        raise UsageError(f"dimension {name!r} is a set, which has no order", hint="use a list")
    if not isinstance(value, (list, tuple, range)):
        return [value]
    if not value:
        raise UsageError(f"dimension {name!r} is empty", hint="give it at least one value")
    return list(value)


# ---------------------------------------------------------------- sources -> grids


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "itertuples")


def _file_grids(src: str | os.PathLike[str], engine: str) -> list[_Grid]:
    if not isinstance(src, (str, os.PathLike)):
        raise UsageError(f"cannot read a scenario table from a {type(src).__name__}",
                         hint="pass a .csv or .xlsx path, or a pandas DataFrame")
    shown = os.fspath(src)
    path = Path(shown)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_csv_grid(path, shown)]
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_grids(path, shown, engine)
    raise TableError(f"unsupported table type {path.suffix or '(none)'!r}", Location(shown),
                     hint="save it as .csv (UTF-8) or .xlsx")


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _unreadable(error, path, shown) from error


def _unreadable(error: OSError, path: Path, shown: str) -> TableError:
    if isinstance(error, FileNotFoundError):
        return TableError("file not found", Location(shown), hint=f"looked for {path.absolute()}")
    return TableError(f"cannot read the file: {error.strerror or error}", Location(shown))


def _csv_grid(path: Path, shown: str) -> _Grid:
    data = _read_bytes(path, shown)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TableError(f"not valid UTF-8 (byte 0x{data[error.start]:02x} at line {line})",
                         Location(shown, row=line),
                         hint="save it as UTF-8, e.g. 'CSV UTF-8' in Excel") from error
    return _Grid(shown, None, path.stem, _csv_records(text, shown), label=lambda i: str(i + 1))


def _csv_records(text: str, shown: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            quote = "end of data" in str(error) or "expected after" in str(error)
            raise TableError(f"cannot parse the CSV: {error}", Location(shown, row=start),
                             hint="a quote opened in this row is never closed, or text "
                                  "follows a closing quote" if quote else None) from error
        yield start, cells


def _delimiter(text: str) -> str:
    """Semicolon if it occurs more often than the comma outside quotes in the header line."""
    counts = {",": 0, ";": 0}
    quoted = False
    for char in text.lstrip():
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "\r\n":
            break
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def _dataframe_grid(frame: DataFrame, stage: str) -> _Grid:
    import pandas as pd

    def plain(value: Any) -> Any:
        if pd.api.types.is_scalar(value) and pd.isna(value):
            return None
        if type(value).__module__ == "numpy":
            return value.tolist()
        return value

    headers = [str(column) for column in frame.columns]
    rows = (
        (number, [plain(value) for value in values])
        for number, values in enumerate(frame.itertuples(index=False, name=None), start=2)
    )
    return _Grid("<DataFrame>", None, stage, itertools.chain([(1, headers)], rows),
                 label=column_letter)


def column_letter(index: int) -> str:
    """Excel's label of the 0-based column ``index``: 0 -> "A", 26 -> "AA"."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(65 + rest) + label
    return label


# ---------------------------------------------------------------- Excel


def _xlsx_grids(path: Path, shown: str, engine: str) -> list[_Grid]:
    sheets = _inspect_workbook(path, shown)
    names = [name for name, _ in sheets]
    if engine == "calamine":
        try:
            cells = _calamine_cells(path, shown, names)
        except ImportError:
            logger.debug("python-calamine is not installed; reading %s with openpyxl", shown)
            cells = _openpyxl_cells(path, shown, names)
    else:
        cells = _openpyxl_cells(path, shown, names)
    return [
        _Grid(shown, name, name, enumerate(cells[name], start=1), column_letter, bad)
        for name, bad in sheets
    ]


def _inspect_workbook(path: Path, shown: str) -> list[tuple[str, dict[tuple[int, int], str]]]:
    """Visible worksheets and their bad cells, after refusing oversized files and zip bombs."""
    import zipfile
    from xml.etree.ElementTree import ParseError

    try:
        size = path.stat().st_size
    except OSError as error:
        raise _unreadable(error, path, shown) from error
    if size > MAX_XLSX_BYTES:
        raise TableError(f"the file is {size / 2**20:.0f} MB, more than the "
                         f"{MAX_XLSX_BYTES // 2**20} MB a scenario table may have", Location(shown))
    try:
        with zipfile.ZipFile(path) as archive:
            _refuse_zip_bomb(archive, shown)
            return [(name, _bad_cells(archive, part)) for name, part in _worksheets(archive, shown)]
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, ParseError) as error:
        raise TableError(f"not a readable .xlsx workbook ({error})", Location(shown),
                         hint="save it from Excel as .xlsx, without a password") from error


def _refuse_zip_bomb(archive: zipfile.ZipFile, shown: str) -> None:
    """Refuse what would unpack too large, by what the headers declare and, since a
    header can lie, by what each member really inflates to, read in bounded pieces;
    and any XML part declaring a DTD (entity expansion, external entities), before
    an XML parser sees it."""
    members = archive.infolist()
    total = sum(member.file_size for member in members)
    if total > MAX_UNZIPPED_BYTES:
        raise TableError(f"the workbook unpacks to {total / 2**20:.0f} MB, more than "
                         f"{MAX_UNZIPPED_BYTES // 2**20} MB (refused as a zip bomb)",
                         Location(shown))
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECK_FROM and ratio > MAX_RATIO:
            raise TableError(f"{member.filename} is compressed {ratio:.0f} to 1, more than "
                             f"{MAX_RATIO} to 1 (refused as a zip bomb)", Location(shown))
    for member in members:
        _check_member(archive, member, shown)


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, shown: str) -> None:
    xml = member.filename.lower().endswith((".xml", ".rels", ".vml"))
    seen = 0
    tail = b""
    with archive.open(member) as stream:
        while piece := stream.read(_PIECE):
            seen += len(piece)
            if seen > member.file_size:
                raise TableError(f"{member.filename} unpacks to more than its header says "
                                 "(refused as a zip bomb)", Location(shown))
            if xml and _DTD.search(tail + piece):
                raise TableError(f"{member.filename} declares a DTD or entities (refused: "
                                 "an Excel workbook never does)", Location(shown))
            tail = piece[-16:]


def _worksheets(archive: zipfile.ZipFile, shown: str) -> list[tuple[str, str]]:
    """(sheet name, XML part) of every visible worksheet, in workbook order."""
    workbook = "xl/workbook.xml"
    for rel in _parse_xml(archive, "_rels/.rels"):
        if _local(rel.tag) == "Relationship" and rel.get("Type", "").endswith("/officeDocument"):
            workbook = rel.get("Target", workbook).lstrip("/")
    folder, base = workbook.rsplit("/", 1) if "/" in workbook else ("", workbook)
    parts = {}
    for rel in _parse_xml(archive, f"{folder}/_rels/{base}.rels".lstrip("/")):
        if _local(rel.tag) == "Relationship" and rel.get("Type", "").endswith("/worksheet"):
            target = rel.get("Target", "")
            parts[rel.get("Id")] = target.lstrip("/") if target.startswith("/") else (
                f"{folder}/{target}".lstrip("/"))
    sheets = []
    for sheet in _parse_xml(archive, workbook):
        if _local(sheet.tag) != "sheet" or sheet.get("state", "visible") != "visible":
            continue
        rel_id = next((v for k, v in sheet.attrib.items() if _local(k) == "id"), None)
        if rel_id in parts:
            sheets.append((sheet.get("name", ""), parts[rel_id]))
    if not sheets:
        raise TableError("the workbook has no visible worksheet", Location(shown))
    return sheets


def _parse_xml(archive: zipfile.ZipFile, member: str) -> Iterable[Any]:
    from defusedxml.ElementTree import fromstring

    return fromstring(archive.read(member)).iter()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _bad_cells(archive: zipfile.ZipFile, part: str) -> dict[tuple[int, int], str]:
    """(row, 0-based column) -> problem, for formulas without a cached value and errors."""
    from defusedxml.ElementTree import iterparse

    raw = archive.read(part)
    if not _may_hold_bad_cells(raw) or not _FORMULA_OR_ERROR.search(raw):
        return {}
    bad = {}
    for _, element in iterparse(io.BytesIO(raw)):
        if _local(element.tag) != "c":
            continue
        children = {_local(child.tag): child for child in element}
        value = children["v"].text if "v" in children else None
        kind = element.get("t", "n")
        problem = None
        if kind == "e":
            problem = f"the cell holds the Excel error {value}"
        elif "f" in children and not value and kind not in ("str", "s", "inlineStr"):
            problem = "the formula has no saved value"
        if problem and element.get("r"):
            bad[_cell_index(element.get("r"))] = problem
        element.clear()
    return bad


def _may_hold_bad_cells(raw: bytes) -> bool:
    """False when ``_FORMULA_OR_ERROR`` cannot match: each match holds one of these
    substrings, and finding them is many times faster than the regex."""
    return b"<f" in raw or b":f" in raw or b't="e' in raw or b"t='e" in raw


def _cell_index(ref: str) -> tuple[int, int]:
    letters = ref.rstrip("0123456789")
    column = 0
    for letter in letters.upper():
        column = column * 26 + ord(letter) - 64
    return int(ref[len(letters):]), column - 1


def _calamine_cells(path: Path, shown: str, names: list[str]) -> dict[str, list[list[Any]]]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        with CalamineWorkbook.from_path(str(path)) as workbook:
            return {name: workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
                    for name in names}
    except (CalamineError, OSError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise TableError(f"cannot read the workbook: {detail}", Location(shown)) from error


def _openpyxl_cells(path: Path, shown: str, names: list[str]) -> dict[str, list[list[Any]]]:
    _defuse_xml()
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except Exception as error:  # openpyxl raises many kinds for a broken file
        detail = " ".join(str(error).split())
        raise TableError(f"cannot read the workbook: {detail}", Location(shown)) from error
    try:
        cells = {}
        for name in names:
            sheet = workbook[name]
            sheet.reset_dimensions()  # trust the cells, not the <dimension> tag
            cells[name] = [list(row) for row in sheet.iter_rows(values_only=True)]
        return cells
    finally:
        workbook.close()


def _defuse_xml() -> None:
    """Refuse XML entity tricks in every parser openpyxl might use."""
    import warnings

    import defusedxml
    from openpyxl.xml import DEFUSEDXML

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # defusedxml.cElementTree
        defusedxml.defuse_stdlib()
    if not DEFUSEDXML:
        logger.warning("openpyxl does not use defusedxml; stdlib XML parsers are defused")


# ---------------------------------------------------------------- grid -> Table


def _build_table(grid: _Grid) -> Table:
    _check_stage(grid)
    records = iter(grid.records)
    header_line, header_cells = next(
        ((line, cells) for line, cells in records if _any_set(cells)), (0, []))
    if not header_line:
        raise TableError("the table is empty: no rows", grid.where(),
                         hint="put the headers in the first row")
    headers = _headers(grid, header_line, header_cells)
    layout = _Layout(grid, headers)
    rows = tuple(row for line, cells in records if (row := layout.row(line, cells)) is not None)
    if not rows:
        raise TableError("the table has headers but no rows", grid.where(),
                         hint="add one row per instance")
    names = tuple(name for name in headers.values() if name)
    return Table(grid.file, grid.sheet, grid.stage, names, rows)


def _check_stage(grid: _Grid) -> None:
    name = grid.stage
    problem = "is blank" if not name.strip() else name_problem(name)
    if problem:
        raise TableError(f"stage name {name!r} {problem}", grid.where(),
                         hint="a stage name becomes a folder: rename the sheet or file")


def _any_set(cells: Sequence[Any]) -> bool:
    return any(typed(cell) is not BLANK for cell in cells)


def _headers(grid: _Grid, line: int, cells: Sequence[Any]) -> dict[int, str | None]:
    """0-based column -> header: "" for a column without one, None for a comment column."""
    _check_cells(grid, line, range(len(cells)), {})
    headers: dict[int, str | None] = {}
    seen: dict[str, int] = {}
    for column, cell in enumerate(cells):
        value = typed(cell)
        name = "" if value is BLANK else (cell.strip() if isinstance(cell, str) else str(value))
        if name.startswith("#"):
            headers[column] = None
            continue
        if name.lower() in RESERVED:
            name = name.lower()
        if name and name.casefold() in seen:
            first = seen[name.casefold()]
            raise TableError(
                f"duplicate column {name!r}: {grid.label(first)} ({headers[first]}) "
                f"and {grid.label(column)} ({name})", grid.where(line, column, name),
                hint="headers must differ, also in case")
        seen[name.casefold()] = column
        headers[column] = name
    if "instance" not in headers.values():
        listed = ", ".join(repr(name) for name in headers.values() if name) or "none"
        raise TableError("no 'instance' column", grid.where(line),
                         hint=f"add a column named instance; the headers are: {listed}")
    return headers


def _check_cells(grid: _Grid, line: int, columns: Iterable[int],
                 headers: dict[int, str | None]) -> None:
    for column in columns:
        problem = grid.bad_cells.get((line, column))
        if problem:
            hint = (_RECALCULATE if problem.startswith("the formula") else
                    "correct the formula or the cells it uses")
            raise TableError(problem, grid.where(line, column, headers.get(column) or ""),
                             hint=hint)


class _Layout:
    """What every row of one table shares: its columns, labels and typed cell texts."""

    MEMO_LIMIT = 20_000
    """Distinct cell texts remembered per table (repeated values are typed once)."""

    def __init__(self, grid: _Grid, headers: dict[int, str | None]):
        self.grid = grid
        self.headers = headers
        self.config = [(column, name) for column, name in headers.items() if name is not None]
        self.where = {name: column for column, name in headers.items() if name}
        self.labels = {name: grid.label(column) for name, column in self.where.items()}
        self.width = len(headers)
        self.memo: dict[str, Any] = {}

    def row(self, line: int, cells: Sequence[Any]) -> Row | None:
        """The typed row, or None for a blank one (comment cells do not count)."""
        grid = self.grid
        if grid.bad_cells:
            _check_cells(grid, line, [c for c in range(len(cells))
                                      if self.headers.get(c, "") is not None], self.headers)
        values = {}
        count = len(cells)
        for column, name in self.config:
            if column >= count:
                break
            value = self.typed(cells[column])
            if value is BLANK:
                continue
            if not name:
                self.headerless(line, column, cells[column])
            values[name] = value
        for column in range(self.width, count):  # cells past the last header
            if self.typed(cells[column]) is not BLANK:
                self.headerless(line, column, cells[column])
        if not values:
            return None
        if "instance" not in values:
            raise TableError("the instance name is blank", grid.where(
                line, self.where["instance"], "instance"),
                hint="every row needs an instance name")
        enabled = _enabled(values.pop("enabled", BLANK), grid, line, self.where.get("enabled"))
        return Row(grid.file, grid.sheet, grid.stage, line, values, self.labels, enabled)

    def typed(self, cell: Any) -> Any:
        """``typed(cell)``; a text's immutable result is remembered for the next row."""
        if type(cell) is not str:
            return typed(cell)
        value = self.memo.get(cell, _UNSEEN)
        if value is _UNSEEN:
            value = typed_text(cell)
            if type(value) not in _MUTABLE and len(self.memo) < self.MEMO_LIMIT:
                self.memo[cell] = value
        return value

    def headerless(self, line: int, column: int, cell: Any) -> None:
        raise TableError(f"value {cell!r} in a column without a header",
                         self.grid.where(line, column),
                         hint="give the column a header, or remove the value "
                              "(a CSV row may have more cells than the header)")


def _enabled(value: Any, grid: _Grid, line: int, column: int | None) -> bool:
    if value is BLANK or value is True or value is False:
        return value is not False
    text = str(value).lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise TableError(f"enabled must be true or false, not {value!r}",
                     grid.where(line, column, "enabled"),
                     hint="use TRUE/FALSE, 1/0, yes/no or on/off; blank means enabled")


# ---------------------------------------------------------------- cell typing


def typed(value: Any) -> Any:
    """A raw cell (text, Excel or DataFrame value) as ductaflow types it, or ``BLANK``."""
    if value is None or value is BLANK:
        return BLANK
    if isinstance(value, str):
        return typed_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return BLANK if math.isnan(value) else _number(value)
    if isinstance(value, datetime.datetime):
        midnight = value.tzinfo is None and value.time() == datetime.time(0)
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _duration(value)
    if isinstance(value, (list, dict)):
        return value
    if isinstance(value, tuple):
        return list(value)
    return typed_text(str(value))


def typed_text(text: str) -> Any:
    """The value a text cell stands for (see the module docstring)."""
    text = text.strip()
    if not text:
        return BLANK
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if _LEADING_ZERO.match(text):
        return text
    try:
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            number = float(text)
            return _number(number) if math.isfinite(number) else text
    except ValueError:  # more digits than int() accepts
        return text
    first = text[0]
    if first == "[" or (first == "{" and _JSON_OBJECT.match(text)):
        try:
            parsed = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            return text
        if isinstance(parsed, (list, dict)):
            return parsed
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(number: float) -> int | float:
    if number.is_integer() and abs(number) < _EXACT_INT_LIMIT:
        return int(number)
    return number


def _duration(delta: datetime.timedelta) -> str:
    seconds = delta.total_seconds()
    sign = "-" if seconds < 0 else ""
    minutes, secs = divmod(abs(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    secs_text = f"{int(secs):02d}" if float(secs).is_integer() else f"{secs:09.6f}".rstrip("0")
    return f"{sign}{hours}:{minutes:02d}:{secs_text}"
