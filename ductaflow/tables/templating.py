"""Safe ``{name}`` templates in scenario-table cells.

Only plain names are allowed, with an optional format spec (``{year:04d}``): no
positional fields, attribute access, indexing, conversions or nested fields, and no
width or precision large enough to build a huge string. ``{{`` and ``}}`` are literal
braces. A non-string cell is never a template.

Errors are ``TemplateError`` with a message only; the caller knows the cell and adds
the location.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from collections.abc import Mapping
from typing import Any

from ductaflow.errors import TemplateError

MAX_WIDTH = 1000
"""The largest width or precision a format spec may ask for."""
MAX_RENDERED = 32_767
"""The most characters a rendered cell may hold: an Excel cell's own limit, so every
value can still be shown in the results workbook. A template repeating a long cell
would otherwise grow to megabytes in every config."""

_FORMATTER = string.Formatter()
_NUMBER = re.compile(r"\d+")
_MISSING = object()


def fields(template: str) -> tuple[str, ...]:
    """The field names ``template`` uses, each once, in order of first use."""
    return tuple(dict.fromkeys(name for _, name, _ in _parse(template) if name is not None))


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with every ``{name[:spec]}`` replaced by ``format(values[name], spec)``."""
    parts = []
    for literal, name, spec in _parse(template):
        parts.append(literal)
        if name is not None:
            value = values.get(name, _MISSING)
            # format(text, "") is the text itself: skip the call for the common case
            parts.append(value if not spec and type(value) is str else
                         _format_field(name, spec, values))
    text = "".join(parts)
    if len(text) > MAX_RENDERED and len(text) > len(template):
        raise TemplateError(f"the template renders to {len(text):,} characters, more than "
                            f"the {MAX_RENDERED:,} a cell may hold",
                            hint="shorten the cells it repeats")
    return text


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[tuple[str, str | None, str], ...]:
    """(literal text, field name or None, format spec), every field checked to be safe.

    Remembered per template: a table repeats the same few templates on every row.
    """
    try:
        pieces = list(_FORMATTER.parse(template))
    except ValueError as error:
        raise TemplateError(
            f"malformed template {template!r}: {error}",
            hint="write {{ and }} for literal braces",
        ) from error
    for _, name, spec, conversion in pieces:
        if name is not None:
            _check_field(name, spec or "", conversion)
    return tuple((literal, name, spec or "") for literal, name, spec, _ in pieces)


def _check_field(name: str, spec: str, conversion: str | None) -> None:
    bang = f"!{conversion}" if conversion else ""
    shown = "{" + name + bang + (f":{spec}" if spec else "") + "}"
    if not name.strip() or name.isdigit():
        raise TemplateError(f"positional field {shown} is not allowed",
                            hint="name a column, e.g. {scenario}")
    if "." in name or "[" in name or "]" in name:
        raise TemplateError(f"attribute access or indexing in {shown} is not allowed",
                            hint="use a plain column name")
    if conversion is not None:
        raise TemplateError(f"conversion in {shown} is not allowed", hint="drop the !" + conversion)
    if "{" in spec or "}" in spec:
        raise TemplateError(f"nested field in {shown} is not allowed",
                            hint="format specs must be literal, e.g. {year:04d}")
    if any(int(digits) > MAX_WIDTH for digits in _NUMBER.findall(spec)):
        raise TemplateError(f"format spec of {shown} is too wide",
                            hint=f"width and precision are limited to {MAX_WIDTH}")


def _format_field(name: str, spec: str, values: Mapping[str, Any]) -> str:
    if name not in values:
        raise TemplateError(f"unknown field {{{name}}}", hint=_suggest(name, values))
    value = values[name]
    try:
        return format(value, spec)
    except (ValueError, TypeError, OverflowError) as error:
        raise TemplateError(
            f"format spec {spec!r} of field {{{name}}} does not fit its value "
            f"{value!r} ({type(value).__name__}): {error}"
        ) from error


def _suggest(name: str, values: Mapping[str, Any]) -> str:
    known = [key for key in values if isinstance(key, str)]
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        return "did you mean " + " or ".join("{" + key + "}" for key in close) + "?"
    if not known:
        return "no fields are defined"
    listed = ", ".join("{" + key + "}" for key in sorted(known)[:20])
    return f"known fields: {listed}" + (", ..." if len(known) > 20 else "")
