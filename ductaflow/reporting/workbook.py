"""The results workbook (``conductor_results.xlsx``, ``ductaflow results -o x.xlsx``):
one sheet per stage, the status cell lit, the run folder linked, the header frozen.

openpyxl lays the package out (styles, sheets, widths, the frozen and filterable
header); the rows themselves, 100,000 in a big project, are streamed into the
sheet's XML here. openpyxl's own cell writer, without lxml, costs about 60 µs a
cell: 90 s for such a workbook, written after every conduct that ran anything.
Text a spreadsheet would run as a formula is stored as text; the file is written
whole in memory (compressed), then moved over the old one.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

from ductaflow.run_folder import records

FORMULA_START = ("=", "+", "-", "@")
FILLS = {"success": "C6EFCE", "warning": "FFEB9C", "error": "FFC7CE", "": "E7E6E6"}
FONTS = {"success": "006100", "warning": "9C5700", "error": "9C0006", "": "595959"}
#: What a cell may not hold (openpyxl's ``ILLEGAL_CHARACTERS_RE``, without importing it).
ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
#: One encoder for every list or dict cell: ``json.dumps`` with options makes one a call.
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
_LINK = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_SHEET_PATH = re.compile(r"xl/worksheets/sheet(\d+)\.xml")
#: Text the fast path of a cell leaves alone: no formula's quote, nothing to escape
#: (white space at either end needs ``xml:space``).
_FORMULA_CHARS = frozenset(FORMULA_START)
_ESCAPED = frozenset("&<>")


class Styled(NamedTuple):
    """A cell with a named style (``light_style``, ``"df link"``...), maybe a link."""

    value: Any
    style: str
    link: str | None = None


class Sheet(NamedTuple):
    """One sheet: its header and its rows, each cell a value or a ``Styled``."""

    stage: str
    headers: Sequence[Any]
    lines: Sequence[Sequence[Any]]


def light_style(status: str) -> str:
    """The named style of a status cell."""
    return f"df {status or 'none'}" if status in FILLS else "df none"


def cell_value(value: Any) -> Any:
    """A value as a cell holds it: lists and dicts as JSON, no illegal characters."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, dict)):
        value = _JSON.encode(value)
    text = str(value)
    return text if ILLEGAL.search(text) is None else ILLEGAL.sub("", text)


def write_book(path: Path, sheets: Sequence[Sheet]) -> None:
    """The workbook of ``sheets`` at ``path``, atomically."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    _add_styles(book)
    names: set[str] = set()
    frames = []
    for sheet in sheets:
        frame = book.create_sheet(sheet_name(sheet.stage, names))
        _set_layout(frame, [sheet.headers, *sheet.lines])
        frames.append(frame)
    styles = _StyleIds(book, frames[0] if frames else None)
    buffer = io.BytesIO()
    book.save(buffer)
    records.atomic_write_bytes(path, _with_rows(buffer, sheets, styles))


def _add_styles(book: Any) -> None:
    """The named styles a workbook's cells share: header, lights, link, failed value."""
    from openpyxl.styles import Font, NamedStyle, PatternFill

    book.add_named_style(NamedStyle("df header", font=Font(bold=True)))
    book.add_named_style(NamedStyle("df link", font=Font(color="1A5FB4", underline="single")))
    book.add_named_style(NamedStyle("df failed", font=Font(italic=True, color="808080")))
    for status, fill in FILLS.items():
        book.add_named_style(NamedStyle(
            light_style(status), font=Font(bold=True, color=FONTS[status]),
            fill=PatternFill("solid", start_color=fill, end_color=fill)))


class _StyleIds:
    """The index openpyxl gives a cell format (a named style, maybe quoted), made
    before the workbook is saved so that it writes every one the rows use."""

    def __init__(self, book: Any, sheet: Any):
        self.ids: dict[tuple[str | None, bool], int] = {(None, False): 0}
        if sheet is None:
            return
        from openpyxl.cell import WriteOnlyCell

        for style in ["df header", "df link", "df failed", *map(light_style, FILLS), None]:
            for quoted in (False, True):
                cell = WriteOnlyCell(sheet)
                if style is not None:
                    cell.style = style
                cell.quotePrefix = quoted
                self.ids[(style, quoted)] = cell.style_id

    def __call__(self, style: str | None, quoted: bool) -> int:
        return self.ids[(style, quoted)]


def _set_layout(sheet: Any, lines: Sequence[Sequence[Any]]) -> None:
    """Widths from the longest value, the header frozen and filterable."""
    from openpyxl.utils import get_column_letter

    count = max((len(line) for line in lines), default=0)
    widths = [0] * count
    for line in lines:
        for index, cell in enumerate(line):
            value = cell.value if type(cell) is Styled else cell
            if value is not None:
                widths[index] = max(widths[index], len(str(value)))
    for index, width in enumerate(widths):
        sheet.column_dimensions[get_column_letter(index + 1)].width = min(max(width, 6) + 2, 60)
    sheet.freeze_panes = "A2"
    if count:
        sheet.auto_filter.ref = f"A1:{get_column_letter(count)}{len(lines)}"


def _with_rows(skeleton: io.BytesIO, sheets: Sequence[Sheet], styles: _StyleIds) -> bytes:
    """The saved workbook with each sheet's rows streamed into its XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(skeleton) as old, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            found = _SHEET_PATH.fullmatch(info.filename)
            if found is None:
                new.writestr(info.filename, old.read(info.filename))
                continue
            sheet = sheets[int(found.group(1)) - 1]
            text = old.read(info.filename).decode("utf-8")
            links: list[tuple[str, str]] = []
            with new.open(info.filename, "w") as stream:
                for chunk in _sheet_xml(text, sheet, styles, links):
                    stream.write(chunk.encode("utf-8"))
            if links:
                new.writestr(f"xl/worksheets/_rels/sheet{found.group(1)}.xml.rels",
                             _relations(links))
    return out.getvalue()


def _sheet_xml(text: str, sheet: Sheet, styles: _StyleIds,
               links: list[tuple[str, str]]) -> Iterator[str]:
    """openpyxl's sheet (layout, no rows) with the header and the rows in its
    ``sheetData``, and their links before its page margins."""
    if "<sheetData/>" in text:
        text = text.replace("<sheetData/>", "<sheetData></sheetData>")
    head, _, tail = text.partition("</sheetData>")
    yield head
    letters = _letters(max([len(sheet.headers), *map(len, sheet.lines)]))
    header = [Styled(cell_value(h), "df header") for h in sheet.headers]
    yield _row_xml(1, header, letters, styles, links)
    for number, line in enumerate(sheet.lines, start=2):
        yield _row_xml(number, line, letters, styles, links)
    yield "</sheetData>"
    if links:
        before, mark, after = tail.partition("<pageMargins")
        refs = "".join(f'<hyperlink ref="{ref}" r:id="rId{i}"/>'
                       for i, (ref, _) in enumerate(links, start=1))
        tail = f'{before}<hyperlinks xmlns:r="{_LINK}">{refs}</hyperlinks>{mark}{after}'
    yield tail


def _row_xml(number: int, cells: Sequence[Any], letters: Sequence[str], styles: _StyleIds,
             links: list[tuple[str, str]]) -> str:
    parts = [f'<row r="{number}">']
    for column, cell in enumerate(cells):
        kind = type(cell)
        if kind is int or kind is float and math.isfinite(cell):  # the common cells, at once
            parts.append(f'<c r="{letters[column]}{number}" t="n"><v>{cell!r}</v></c>')
            continue
        if kind is str and cell and cell[0] not in _FORMULA_CHARS and not cell[0].isspace() \
                and not cell[-1].isspace() and not _ESCAPED.intersection(cell):
            parts.append(f'<c r="{letters[column]}{number}" t="inlineStr"><is><t>{cell}</t>'
                         '</is></c>')
            continue
        style = None
        if kind is Styled:
            value, style, link = cell
            if link is not None:
                links.append((f"{letters[column]}{number}", link))
        else:
            value = cell
        if (value is None or value == "") and style is None:
            continue
        quoted = isinstance(value, str) and value.startswith(FORMULA_START)
        index = styles(style, quoted)
        parts.append(_cell_xml(f"{letters[column]}{number}", value,
                               f' s="{index}"' if index else ""))
    parts.append("</row>")
    return "".join(parts)


def _cell_xml(ref: str, value: Any, style: str) -> str:
    if value is None or value == "":
        return f'<c r="{ref}"{style}/>'
    if isinstance(value, bool):
        return f'<c r="{ref}"{style} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return f'<c r="{ref}"{style} t="n"><v>{value!r}</v></c>'
    text = escape(str(value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _relations(links: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<Relationship Id="rId{i}" Type="{_LINK}/hyperlink" '
        f'Target="{escape(target, {chr(34): "&quot;"})}" TargetMode="External"/>'
        for i, (_, target) in enumerate(links, start=1))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships">{items}</Relationships>')


def _letters(count: int) -> list[str]:
    from openpyxl.utils import get_column_letter

    return [get_column_letter(i) for i in range(1, count + 1)]


def sheet_name(stage: str, taken: set[str]) -> str:
    """An Excel-safe, unique sheet name (31 characters, none of ``[]:*?/\\``)."""
    base = "".join("_" if c in "[]:*?/\\" else c for c in stage)[:31].strip("'") or "stage"
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base[:28]}~{n}"
    taken.add(name.lower())
    return name
