"""A source as a grid of raw cells, and how one cell is typed.

Every source (CSV, Excel sheet, DataFrame) becomes a ``Grid`` with the row numbers
and column labels a user sees; ``typed`` gives one cell its value, the same
whatever the table was saved as (the rules: ``tables.reading``).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ductaflow.errors import Location, TableError

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
_EXACT_INT_LIMIT = 2**53
_JSON_OBJECT = re.compile(r"\{\s*[\"}]")
"""How a JSON object starts; ``{scenario}_{year}`` templates never do."""

class _Blank:
    """The one value of a blank cell: "not set", left out of ``Row.values``."""

    def __repr__(self) -> str:
        return "BLANK"


BLANK: Any = _Blank()


@dataclass
class Grid:
    """Raw cells of one stage, with the row numbers and column labels a user sees."""

    file: str
    sheet: str | None
    stage: str
    records: Iterable[tuple[int, Sequence[Any]]]
    label: Callable[[int], str]
    bad_cells: dict[tuple[int, int], str] = field(default_factory=dict)

    def where(self, row: int | None = None, column: int | None = None,
              header: str = "") -> Location:
        """The location of a row or cell, with the labels a user sees."""
        shown = None
        if column is not None:
            shown = self.label(column) + (f" ({header})" if header else "")
        return Location(self.file, self.sheet, row, shown)


def column_letter(index: int) -> str:
    """Excel's label of the 0-based column ``index``: 0 -> "A", 26 -> "AA"."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(65 + rest) + label
    return label


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


def unreadable(error: OSError, path: Path, shown: str) -> TableError:
    """The error for a table file that cannot be read, naming it."""
    if isinstance(error, FileNotFoundError):
        return TableError("file not found", Location(shown), hint=f"looked for {path.absolute()}")
    return TableError(f"cannot read the file: {error.strerror or error}", Location(shown))
