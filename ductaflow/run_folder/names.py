"""Which names may become folders of a runs folder: a stage or an instance name must be
a safe single path component on every OS, and two names that one file system folds
together (case, Unicode normalization) are one folder. The tables and the planner
both check names here.

Standard library only."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 100
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{i}" for p in ("COM", "LPT") for i in [*range(1, 10), "¹", "²", "³"]]
)
_BAD_CHARS = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe single path component on every OS, or None."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"{name!r} is not a folder name"
    bad = _BAD_CHARS.search(name)
    if bad:
        return f"contains {bad.group()!r}"
    if name != name.strip(" "):
        return "starts or ends with a space"
    if name.endswith("."):
        return "ends with a dot"
    if name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return "is a reserved device name on Windows"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


def fold(name: str) -> str:
    """The one folder a name becomes where folders ignore case (Windows, macOS) and
    Unicode normalization (macOS): ``café`` in NFC and NFD is one folder there."""
    return unicodedata.normalize("NFC", name.casefold())
