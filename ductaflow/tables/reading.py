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
import io
import itertools
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductaflow.errors import Location, TableError, TemplateError, UsageError
from ductaflow.model import Row, Table
from ductaflow.run_folder.names import fold, name_problem
from ductaflow.tables.grids import (
    BLANK,
    FALSE_WORDS,
    TRUE_WORDS,
    Grid,
    column_letter,
    typed,
    typed_text,
    unreadable,
)
from ductaflow.tables.templating import fields
from ductaflow.tables.workbooks import RECALCULATE, xlsx_grids

if TYPE_CHECKING:
    from pandas import DataFrame

logger = logging.getLogger(__name__)

_MUTABLE = (list, dict)
_UNSEEN = object()

RESERVED = ("instance", "flow", "enabled")
ENGINES = ("calamine", "openpyxl")


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
    grids: list[Grid] = []
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


def _file_grids(src: str | os.PathLike[str], engine: str) -> list[Grid]:
    if not isinstance(src, (str, os.PathLike)):
        raise UsageError(f"cannot read a scenario table from a {type(src).__name__}",
                         hint="pass a .csv or .xlsx path, or a pandas DataFrame")
    shown = os.fspath(src)
    path = Path(shown)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_csv_grid(path, shown)]
    if suffix in (".xlsx", ".xlsm"):
        return xlsx_grids(path, shown, engine)
    raise TableError(f"unsupported table type {path.suffix or '(none)'!r}", Location(shown),
                     hint="save it as .csv (UTF-8) or .xlsx")


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise unreadable(error, path, shown) from error


def _csv_grid(path: Path, shown: str) -> Grid:
    data = _read_bytes(path, shown)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TableError(f"not valid UTF-8 (byte 0x{data[error.start]:02x} at line {line})",
                         Location(shown, row=line),
                         hint="save it as UTF-8, e.g. 'CSV UTF-8' in Excel") from error
    return Grid(shown, None, path.stem, _csv_records(text, shown), label=lambda i: str(i + 1))


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


def _dataframe_grid(frame: DataFrame, stage: str) -> Grid:
    headers = [str(column) for column in frame.columns]
    rows = (
        (number, [_plain(value, number, column, headers) for column, value in enumerate(values)])
        for number, values in enumerate(frame.itertuples(index=False, name=None), start=2)
    )
    return Grid("<DataFrame>", None, stage, itertools.chain([(1, headers)], rows),
                 label=column_letter)


def _plain(value: Any, line: int, column: int, headers: Sequence[str]) -> Any:
    """A DataFrame's cell as a CSV file saved from it would give it: NaN and NA blank,
    numpy values plain, ``inf`` as the text ``inf``. Inside a list or object, NaN is
    ``null`` (as pandas writes JSON); an infinity there has no JSON form: refused."""
    import pandas as pd

    if isinstance(value, (list, tuple, dict)):
        return _json_ready(value, Location("<DataFrame>", None, line,
                                           f"{column_letter(column)} ({headers[column]})"))
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if type(value).__module__ == "numpy":
        value = value.tolist()
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


def _json_ready(value: Any, where: Location) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, where) for v in value]
    if type(value).__module__ == "numpy":
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None
        raise TableError(f"{value} inside a list or object has no JSON form", where,
                         hint="use a large number, or text")
    return value


# ---------------------------------------------------------------- grid -> Table


def _build_table(grid: Grid) -> Table:
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


def _check_stage(grid: Grid) -> None:
    name = grid.stage
    problem = "is blank" if not name.strip() else name_problem(name)
    if problem:
        raise TableError(f"stage name {name!r} {problem}", grid.where(),
                         hint="a stage name becomes a folder: rename the sheet or file")


def _any_set(cells: Sequence[Any]) -> bool:
    return any(typed(cell) is not BLANK for cell in cells)


def _headers(grid: Grid, line: int, cells: Sequence[Any]) -> dict[int, str | None]:
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
        if not name.isprintable():
            raise TableError(f"column header {name!r} holds a line break or another control "
                             "character", grid.where(line, column),
                             hint="a header becomes a config key: remove it")
        if name and fold(name) in seen:
            first = seen[fold(name)]
            raise TableError(
                f"duplicate column {name!r}: {grid.label(first)} ({headers[first]}) "
                f"and {grid.label(column)} ({name})", grid.where(line, column, name),
                hint="headers must differ, also in case and Unicode form")
        seen[fold(name)] = column
        headers[column] = name
    if "instance" not in headers.values():
        listed = ", ".join(repr(name) for name in headers.values() if name) or "none"
        raise TableError("no 'instance' column", grid.where(line),
                         hint=f"add a column named instance; the headers are: {listed}")
    return headers


def _check_cells(grid: Grid, line: int, columns: Iterable[int],
                 headers: dict[int, str | None]) -> None:
    for column in columns:
        problem = grid.bad_cells.get((line, column))
        if problem:
            hint = (RECALCULATE if problem.startswith("the formula") else
                    "correct the formula or the cells it uses")
            raise TableError(problem, grid.where(line, column, headers.get(column) or ""),
                             hint=hint)


class _Layout:
    """What every row of one table shares: its columns, labels and typed cell texts."""

    MEMO_LIMIT = 20_000
    """Distinct cell texts remembered per table (repeated values are typed once)."""

    def __init__(self, grid: Grid, headers: dict[int, str | None]):
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


def _enabled(value: Any, grid: Grid, line: int, column: int | None) -> bool:
    if value is BLANK or value is True or value is False:
        return value is not False
    text = str(value).lower()
    if text in TRUE_WORDS or text in FALSE_WORDS:
        return text in TRUE_WORDS
    raise TableError(f"enabled must be true or false, not {value!r}",
                     grid.where(line, column, "enabled"),
                     hint="use TRUE/FALSE, 1/0, yes/no or on/off; blank means enabled")
