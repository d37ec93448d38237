"""Which names may become folders of a runs folder: a stage or an instance name must be
a safe single path component on every OS, and two names that one file system folds
together (case, Unicode normalization) are one folder. The tables and the planner
both check names here.

Standard library only."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 100
#: File systems count a name's length in bytes (255 per name on Linux and macOS);
#: ductaflow keeps the rest for the names it derives (``<flow>_execution_output.attempt2.txt``,
#: ``conductor_results_<stage>.csv``).
MAX_NAME_BYTES = 200
#: What the runs folder's own files start with: a stage so named would collide with them.
ENGINE_PREFIXES = (".conductor", "conductor_results", "conductor_status_report")
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
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_NAME_BYTES:
        return (f"is {size} bytes in UTF-8, more than the {MAX_NAME_BYTES} a name may take "
                "(file systems allow 255 bytes, and ductaflow adds to some names)")
    return None


def engine_name_problem(stage: str) -> str | None:
    """Why a stage name would collide with the runs folder's own files, or None."""
    folded = fold(stage)
    for prefix in ENGINE_PREFIXES:
        if folded.startswith(prefix):
            return f"collides with ductaflow's own files in the runs folder ({prefix}...)"
    return None


def fold(name: str) -> str:
    """The one folder a name becomes where folders ignore case (Windows, macOS) and
    Unicode normalization (macOS): ``café`` in NFC and NFD is one folder there."""
    return unicodedata.normalize("NFC", name.casefold())
