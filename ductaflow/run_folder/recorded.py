"""The values a flow hands back with ``ductaflow.record``, kept in its folder.

``<flow>_results.json`` beside ``<flow>_config.json``: a JSON object, name -> value, that
a person can read. Each ``record`` call merges its values in and rewrites the file
atomically, so a flow that fails later keeps what it recorded before. The file is
removed when a run of that flow starts (``clear``): values of an earlier run never pass
for this one's. A pandas table is saved beside it as ``<flow>_<name>.csv`` and recorded
as ``{"csv": "<flow>_<name>.csv"}``.

Runs inside flows (kernels and scripts) and in the conductor, which reads the files
back for the results tables. Standard library only: every flow imports it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ductaflow.errors import UsageError
from ductaflow.run_folder.files import CONFIG_SUFFIX, results_path, stem_of_config
from ductaflow.run_folder.names import name_problem
from ductaflow.run_folder.records import atomic_write_text, read_flows_manifest

#: Longest text value kept: what one Excel cell holds.
MAX_TEXT = 32_767
#: Longest value name: a column header people can read.
MAX_NAME = 100


class RecordError(UsageError):
    """A value ``record`` cannot keep: a clear error in the flow that called it."""


def flow_stem_here(folder: Path) -> str | None:
    """The flow running in ``folder``: the one whose config was saved last (each run
    saves its config first), or None outside a run folder (a notebook opened by hand)."""
    saved = []
    try:
        for path in folder.iterdir():
            if path.name.endswith(CONFIG_SUFFIX):
                saved.append((path.stat().st_mtime_ns, path.name))
    except OSError:
        return None
    return stem_of_config(max(saved)[1]) if saved else None


def check_values(values: Mapping[str, Any], stem: str = "flow") -> None:
    """Raise a RecordError for the first name or value ``record`` cannot keep."""
    for name, value in values.items():
        _jsonable(_checked_name(name), value, Path(), stem, dry=True)


def write_values(folder: Path, stem: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into ``<stem>_results.json`` (the last value of a name wins);
    every value is checked first, so a bad one changes nothing."""
    check_values(values, stem)
    kept = {name: _jsonable(name, value, folder, stem) for name, value in values.items()}
    merged = {**read_values(folder, stem), **kept}
    _write_json(results_path(folder, stem), merged)
    return kept


def read_values(folder: Path, stem: str) -> dict[str, Any]:
    """The values recorded in ``folder`` by flow ``stem``; {} when none (or garbage)."""
    try:
        data = json.loads(results_path(folder, stem).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def instance_values(run_dir: Path, stem: str) -> dict[str, Any]:
    """What an instance recorded: its own flow's values, and for a build those of each
    flow it ran (in the order they ran; the build's own values win a clash)."""
    values: dict[str, Any] = {}
    for entry in read_flows_manifest(run_dir):
        folder = entry.get("execution_dir")
        flow = entry.get("flow")
        if isinstance(folder, str) and isinstance(flow, str):
            values.update(read_values(run_dir / folder, Path(flow).stem))
    values.update(read_values(run_dir, stem))
    return values


def clear(folder: Path, stem: str) -> None:
    """A run of ``stem`` starts in ``folder``: forget what an earlier run recorded."""
    for value in read_values(folder, stem).values():
        if isinstance(value, dict) and isinstance(value.get("csv"), str) \
                and name_problem(value["csv"]) is None:
            _remove(folder / value["csv"])
    _remove(results_path(folder, stem))


def shown(value: Any) -> Any:
    """A recorded value as a table cell: a saved table by its file name."""
    if isinstance(value, dict) and set(value) == {"csv"}:
        return value["csv"]
    return value


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"record: a value's name must be non-empty text, not {name!r}")
    if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RecordError(f"record: the name {name[:40]!r} is too long or holds control "
                          "characters")
    return name


def _jsonable(name: str, value: Any, folder: Path, stem: str, dry: bool = False) -> Any:
    """``value`` as JSON keeps it, or a RecordError that says what can be recorded."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN and ±inf: an empty cell
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise RecordError(f"record({name}=...): text of {len(value)} characters; "
                              f"at most {MAX_TEXT} are kept (save long text to a file)")
        return value
    if isinstance(value, (dt.date, dt.time)):  # datetime and pandas' Timestamp too
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _jsonable(name, float(value), folder, stem, dry)
    if hasattr(value, "to_csv") and hasattr(value, "index"):  # a DataFrame or Series
        return _table(name, value, folder, stem, dry)
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", 0) == 0:
        return _jsonable(name, value.item(), folder, stem, dry)  # numpy scalars
    if isinstance(value, (list, tuple)):
        return [_jsonable(name, v, folder, stem, dry) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(name, v, folder, stem, dry) for k, v in value.items()}
    raise RecordError(f"record({name}=...): a {type(value).__name__} cannot be recorded; "
                      "record numbers, text, booleans, dates, lists or dicts of those, "
                      "or a pandas table")


def _table(name: str, table: Any, folder: Path, stem: str, dry: bool) -> dict[str, str]:
    """A pandas DataFrame or Series, saved beside the results as CSV."""
    file_name = f"{stem}_{name}.csv"
    problem = name_problem(file_name)
    if problem:
        raise RecordError(f"record({name}=...): cannot save the table as {file_name!r}: "
                          f"{problem}")
    if not dry:
        text = table.to_csv(index=getattr(table, "index", None) is not None
                            and not _plain_index(table))
        _write_text(folder / file_name, text)
    return {"csv": file_name}


def _plain_index(table: Any) -> bool:
    """A default 0..n-1 index, which a CSV need not repeat."""
    index = getattr(table, "index", None)
    try:
        return index is None or (index.name is None and list(index) == list(range(len(index))))
    except TypeError:
        return False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` whole: a reader (or a killed flow) never sees half a file."""
    atomic_write_text(path, text, fsync_folder=False)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
