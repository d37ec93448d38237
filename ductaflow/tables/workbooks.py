"""Excel workbooks: checked before they are opened, then read as grids.

A workbook is refused when it is too big, a zip bomb, or carries DTDs or entity
tricks; formulas are read as their cached values, and a formula without one or a
cell holding an Excel error is refused naming the cell (both readers would give a
blank), so the sheet XML is scanned for such cells first. Hidden sheets are
ignored. Nothing Excel-related is imported for CSV files.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductaflow.errors import Location, TableError
from ductaflow.tables.grids import Grid, column_letter, unreadable

if TYPE_CHECKING:
    import zipfile

logger = logging.getLogger(__name__)

MAX_XLSX_BYTES = 50 * 2**20
MAX_UNZIPPED_BYTES = 500 * 2**20
MAX_RATIO = 100
RATIO_CHECK_FROM = 2**20
_FORMULA_OR_ERROR = re.compile(rb"<(?:\w+:)?f[\s>/]|\st=[\"']e[\"']")
_PIECE = 1 << 20
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
RECALCULATE = "open the workbook in Excel (or LibreOffice), recalculate and save it"



def xlsx_grids(path: Path, shown: str, engine: str) -> list[Grid]:
    """One grid per visible sheet, after the workbook passed every check."""
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
        Grid(shown, name, name, enumerate(cells[name], start=1), column_letter, bad)
        for name, bad in sheets
    ]


def _inspect_workbook(path: Path, shown: str) -> list[tuple[str, dict[tuple[int, int], str]]]:
    """Visible worksheets and their bad cells, after refusing oversized files and zip bombs."""
    import zipfile
    from xml.etree.ElementTree import ParseError

    try:
        size = path.stat().st_size
    except OSError as error:
        raise unreadable(error, path, shown) from error
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
