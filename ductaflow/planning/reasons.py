"""How a reason shows what changed: config values compared as JSON (``true`` is not
``1``; key order and ``_`` keys never matter), shown compact, lists cut short."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ductaflow.run_folder import records

UPSTREAM_RAN = "upstream ran"
SHOWN_ITEMS = 5
SHOWN_CHARS = 40
_JSON_LIKE = re.compile(r"^(true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?)$")


def config_changes(config: Mapping[str, Any], saved: Any) -> list[str]:
    """``key old -> new`` for each config key that differs from the saved one."""
    if same_canonical(config, saved):
        return []
    now = records.canonical(config)
    return [f"{key} {show(old)} -> {show(new)}"
            for key, old, new in _diff(records.canonical(saved), now, "")]


def same_canonical(now: Any, saved: Any) -> bool:
    """``same(records.canonical(now), saved)`` without building the canonical copy."""
    kind = type(now)
    if kind is dict:
        if type(saved) is not dict:
            return False
        count = 0
        get = saved.get
        for key, value in now.items():
            if type(key) is not str:
                return same(records.canonical(now), saved)
            if key[:1] == "_":
                continue
            count += 1
            other = get(key, _UNSET)
            inner = type(value)
            if inner is str or inner is int or inner is bool:
                if value != other or type(other) is not inner:
                    return False
            elif not same_canonical(value, other):
                return False
        return count == len(saved)
    if kind is list:
        if type(saved) is not list or len(now) != len(saved):
            return False
        for value, other in zip(now, saved, strict=True):
            inner = type(value)
            if inner is str or inner is int or inner is bool:
                if value != other or type(other) is not inner:
                    return False
            elif not same_canonical(value, other):
                return False
        return True
    if kind is str or kind is int or kind is bool:
        return type(saved) is kind and now == saved
    if kind is float:
        if now.is_integer():  # canonical: an int
            return type(saved) is int and saved == now
        return type(saved) is float and (now == saved or (now != now and saved != saved))
    if now is None:
        return saved is None
    return same(records.canonical(now), saved)


_UNSET = object()


def _diff(old: Any, new: Any, prefix: str) -> Iterable[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs; an added or removed
    object shows its leaves."""
    if old is _UNSET and isinstance(new, dict) and new:
        old = {}
    if new is _UNSET and isinstance(old, dict) and old:
        new = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _diff(old.get(key, _UNSET), new.get(key, _UNSET), prefix + key + ".")
    elif not same(old, new):
        yield prefix[:-1], old, new


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: unlike ``==``, ``true`` is not ``1`` (and NaN is NaN)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        if a.keys() != b.keys():
            return False
        for key, value in a.items():
            other = b[key]
            inner = type(value)
            if inner is not type(other):
                return False
            if inner is dict or inner is list:
                if not same(value, other):
                    return False
            elif value != other and (value == value or other == other):
                return False
        return True
    if kind is list:
        return len(a) == len(b) and all(map(same, a, b))
    return a == b or (a != a and b != b)


def show(value: Any) -> str:
    """A config value as a reason shows it: compact, strings bare when unambiguous."""
    if value is _UNSET:
        return "(unset)"
    if isinstance(value, str) and value and value == value.strip() and not _JSON_LIKE.match(value):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def listed(items: Sequence[str]) -> str:
    """Items of a reason, cut after ``SHOWN_ITEMS``: a reason stays one line."""
    shown = ", ".join(items[:SHOWN_ITEMS])
    more = len(items) - SHOWN_ITEMS
    return f"{shown}, … (+{more} more)" if more > 0 else shown


def only_upstream_ran(reason: str) -> bool:
    """Whether a decision's reason is ``upstream ran: ...`` and nothing else: the one
    case an unchanged read of the upstream can cut off."""
    return reason.startswith(UPSTREAM_RAN + ": ") and "; " not in reason


def unchanged_reads(ran: Sequence[str]) -> str:
    """An instance skipped although its upstream ran: ``up to date (prep/low ran; what
    this reads is unchanged)``."""
    return f"up to date ({listed(ran)} ran; what this reads is unchanged)" if ran else \
        "up to date"
