"""What in a table is probably a typo: told before anything runs, one line each.

A misspelled column is taken as a new key and the flow quietly uses the base value; a
decimal comma from a European Excel makes text of a number; a JSON cell missing its
``]`` becomes a string; a misspelled file name fails inside the flow, minutes later.
None of these is wrong for certain, so each is a ``PlanWarning`` naming file, sheet,
row and column, with a "did you mean" when one is close. ``strict`` makes them errors.

Cheap on every row: one pass over the cells, no pandas.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ductaflow.errors import Location
from ductaflow.model import PlanWarning, Row, Table

_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_NOT_KEYS = frozenset({"instance", "flow", "enabled"})


def column_warnings(table: Table, flows: Mapping[str, tuple[dict[str, Any], str | None]],
                    flow_of: Mapping[int, str]) -> list[PlanWarning]:
    """A column that is not a key of the base config of the flow its rows run (when
    that flow has one): ``grwoth`` beside ``growth``."""
    found = []
    labels = table.rows[0].columns if table.rows else {}
    used = dict.fromkeys(flow_of[id(row)] for row in table.rows if id(row) in flow_of)
    for flow in used:
        base, base_file = flows[flow]
        if base_file is None:
            continue
        keys = list(_dotted_keys(base))
        for header in table.headers:
            if header in _NOT_KEYS or _has_key(base, header):
                continue
            close = difflib.get_close_matches(header, keys, n=1)
            found.append(PlanWarning(
                f"column {header!r} is not a key of {base_file}",
                Location(table.file, table.sheet, 1, f"{labels.get(header, '?')} ({header})"),
                f"did you mean {close[0]!r}?" if close else
                "the flow gets it as a new key"))
    return found


def cell_warnings(table: Table) -> list[PlanWarning]:
    """Cells that look like a number or JSON but were read as text."""
    found = []
    numbers = _number_columns(table.rows)
    for row in table.rows:
        for header, value in row.values.items():
            if type(value) is not str or not value:
                continue
            first = value[0]
            if first.isdigit() or first in "+-":
                if header in numbers and _DECIMAL_COMMA.match(value):
                    found.append(PlanWarning(
                        f"{value!r} is text: a decimal comma, where the column's other "
                        "cells are numbers", _where(row, header),
                        f"write {value.replace(',', '.')}"))
            elif first in "[{" and _looks_like_json(value):
                problem = _json_problem(value)
                if problem:
                    found.append(PlanWarning(
                        f"{_short(value)} starts like JSON but does not parse ({problem})",
                        _where(row, header), "the flow gets it as text"))
    return found


def missing_file(text: str, close: Iterable[str]) -> tuple[str, str]:
    """(message, hint) for a relative path whose folder exists but the file does not."""
    near = difflib.get_close_matches(text, list(close), n=1)
    return (f"{text} does not exist (its folder does)",
            f"did you mean {near[0]}?" if near else "the flow gets it as text")


def _where(row: Row, header: str) -> Location:
    return Location(row.file, row.sheet, row.line, f"{row.columns.get(header, '?')} ({header})")


def _number_columns(rows: Iterable[Row]) -> set[str]:
    """Columns with at least one number (not a boolean) among their cells."""
    found: set[str] = set()
    for row in rows:
        for header, value in row.values.items():
            if type(value) in (int, float) and header not in found:
                found.add(header)
    return found


def _looks_like_json(value: str) -> bool:
    """``[...`` or ``{"...``: not a template such as ``{scenario}_x``."""
    if value[0] == "[":
        return True
    rest = value[1:].lstrip()
    return not rest or rest[0] in "\"'}"


def _json_problem(value: str) -> str | None:
    try:
        json.loads(value)
    except ValueError as error:
        return str(error)
    return None


def _short(value: str) -> str:
    text = value if len(value) <= 40 else value[:39] + "…"
    return repr(text)


def _dotted_keys(config: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _has_key(config: Mapping[str, Any], header: str) -> bool:
    node: Any = config
    for part in header.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
