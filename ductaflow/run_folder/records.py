"""Bookkeeping on disk: what an instance ran with, and whether it finished.

Each instance folder ``<runs>/<stage>/<instance>/`` holds a folder ``.ductaflow/``:

``started.json``
    Written when the instance starts (``write_started``), after any previous
    ``record.json`` and ``flows.jsonl`` have been removed. "Started and no record"
    means the last run was killed: the planner reruns it (``last run incomplete``).

``record.json``
    The finished-record, written last and atomically (``write_record``), for success
    and failure alike; ``started.json`` is removed after it. Fields:

    - ``version``: ``1`` (``RECORD_VERSION``); any other value reads as no record.
    - ``run_id``: ``uuid4().hex`` of this run; consumers remember it in ``upstream``.
    - ``stage``, ``instance``: the instance's stage and name.
    - ``flow``: the flow file, project-relative POSIX (``flows/model.py``).
    - ``config``: the config it ran with in ``canonical`` form (keys starting ``_``
      dropped, integral floats as ints, keys sorted).
    - ``code``: ``{path: sha256 hex}``, project-relative POSIX: the flow itself as its
      run started and, for a build, every flow it ran (from ``flows.jsonl``), and
      every project module those imported (``fingerprints``). A file that did not
      exist is ``""``; a module edited during the run is ``fingerprints.EDITED``.
    - ``inputs``: ``{project-relative POSIX path: {"size", "mtime_ns", "sha256"}}``
      for the project files its config names (``fingerprints.file_fingerprint``).
    - ``upstream``: ``{"stage/name": run_id}`` of each instance it depends on, as they
      were when it ran.
    - ``status``: ``"success"``, ``"warning"`` or ``"error"``.
    - ``started_at``, ``ended_at``: ISO 8601 UTC (``utc_now``); ``duration_s``: float.
    - ``upstream_files`` (optional: older records lack it): ``{runs path:
      fingerprint}`` of what it read in other instances' folders, as the run started
      (``fingerprints.path_fingerprint``): what decides ``upstream output changed``
      and the early cutoff.
    - any further keys are free-form extras (``provenance``, ``flows``, ``mode``,
      ``html``: which files the run made, ...).

``flows.jsonl``
    For a build, one JSON object per line for each flow it ran:
    ``{"flow", "execution_dir", "status", "output_file", "code"}`` (``FLOWS_MANIFEST``);
    ``flow`` is project-relative POSIX, ``execution_dir`` relative to the build's
    instance folder. Read with ``read_flows_manifest``.

Standard library only: ``ductaflow.planning.planner`` reads thousands of records per plan.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ductaflow.run_folder.files import (
    FLOWS_MANIFEST,
    GENERATION,
    HISTORY,
    RECORD,
    STARTED,
    STATE_DIR,
    real_folder,
    unlinked,
)

RECORD_VERSION = 1
STATUSES = ("success", "warning", "error")

_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "run_id": str,
    "stage": str,
    "instance": str,
    "flow": str,
    "config": dict,
    "code": dict,
    "inputs": dict,
    "upstream": dict,
    "status": str,
    "started_at": str,
    "ended_at": str,
    "duration_s": (int, float),
}
REQUIRED_KEYS = tuple(_RECORD_TYPES)
_RECORD_CHECKS = tuple(
    (key, frozenset(kind if isinstance(kind, tuple) else (kind,)), kind)
    for key, kind in _RECORD_TYPES.items())
"""(key, the exact types ``json.loads`` gives for it, the types accepted)."""
_RECORD_READ = 1 << 16
_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)


# --- canonical configs -------------------------------------------------------------


def canonical(value: Any) -> Any:
    """The one form a config is compared and hashed in.

    Keys starting ``_`` are dropped (at every level), floats with an integral value
    become ints (Excel's ``2030.0`` is CSV's ``2030``), tuples become lists and dict
    keys are sorted, so key order never matters.
    """
    kind = type(value)
    if kind is dict:
        return _canonical_dict(value)
    if kind is list or kind is tuple:
        return [canonical(v) for v in value]
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, Mapping):
        return _canonical_dict(value)
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        return canonical(float(value))
    return value


def _canonical_dict(value: Mapping[Any, Any]) -> dict[str, Any]:
    try:
        keys = sorted(value)
    except TypeError:
        keys = sorted(value, key=str)
    out = {}
    for key in keys:
        name = key if type(key) is str else str(key)
        if name[:1] != "_":
            item = value[key]
            kind = type(item)
            out[name] = item if kind is str or kind is int or kind is bool else canonical(item)
    return out


# --- files -----------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable, where the OS allows it."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write_text(path: str | os.PathLike[str], text: str, *,
                      fsync_folder: bool = True) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so readers see the old or the new file."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    atomic_write_bytes(path, text.encode("utf-8"), fsync_folder=fsync_folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       fsync_folder: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file.

    Writes a temp file in the same folder, flushes and fsyncs it, gives it the mode
    any new file gets here (``mkstemp`` makes it private; colleagues on a shared
    folder must be able to open the report), ``os.replace``s it over ``path`` and
    fsyncs the folder (unless ``fsync_folder`` is false: the caller does it after
    further changes in that folder). On failure the temp file is removed and the
    error re-raised: the previous file stays intact.
    """
    atomic_write_chunks(path, (data,), fsync_folder=fsync_folder)


def atomic_write_chunks(path: str | os.PathLike[str], chunks: Iterable[bytes], *,
                        fsync_folder: bool = True) -> None:
    """``atomic_write_bytes`` for a file written piece by piece (a report of 100,000
    rows): it never sits whole in memory."""
    import tempfile  # here, like uuid and datetime: a no-op plan writes nothing

    target = Path(path)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        if os.name == "posix":
            os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if fsync_folder:
        _fsync_dir(target.parent)


@functools.cache
def _umask() -> int:
    """The process's umask (read once: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- the runs folder's generation -------------------------------------------------------



def read_generation(runs_dir: str | os.PathLike[str]) -> str:
    """The token a conductor changes, under the lock, before it changes any record;
    ``""`` when there is none. Equal before planning and once the lock is held: no
    record changed in between, and the plan made before the lock still holds."""
    try:
        with open(os.path.join(runs_dir, GENERATION), "rb") as handle:
            return handle.read(64).decode("ascii", errors="replace")
    except OSError:
        return ""


def bump_generation(runs_dir: str | os.PathLike[str]) -> None:
    """Change the token, before any record changes: other conductors replan."""
    import uuid

    atomic_write_text(Path(runs_dir) / GENERATION, uuid.uuid4().hex)


# --- started / record ---------------------------------------------------------------


def utc_now() -> str:
    """The current time as ISO 8601 UTC, the form records use."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A fresh id per run: consumers remember which run of their upstream they read."""
    import uuid

    return uuid.uuid4().hex


def write_started(run_dir: str | os.PathLike[str], info: Mapping[str, Any]) -> None:
    """Mark an instance as started: previous record and flows manifest are removed
    first, so a run killed from here on reads as ``last run incomplete``.

    One folder fsync, after the marker's rename, makes the removals durable too (they
    happened in the same folder): when this returns, no record survives a crash.
    """
    real_folder(Path(run_dir) / STATE_DIR)
    _remove(Path(run_dir) / RECORD)
    _remove(Path(run_dir) / FLOWS_MANIFEST)
    body = {"version": RECORD_VERSION, "started_at": utc_now(), "pid": os.getpid(), **info}
    atomic_write_text(Path(run_dir) / STARTED, json.dumps(body, indent=1, default=str))


def is_started(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a started marker is present (a run is going on, or was killed)."""
    return (Path(run_dir) / STARTED).is_file()


def new_record(*, stage: str, instance: str, flow: str, config: Mapping[str, Any],
               code: Mapping[str, str], inputs: Mapping[str, Mapping[str, Any]],
               upstream: Mapping[str, str], status: str, started_at: str, ended_at: str,
               duration_s: float, run_id: str | None = None, **extras: Any) -> dict:
    """A finished-record with every required field; ``config`` is made canonical."""
    return {
        "version": RECORD_VERSION,
        "run_id": run_id or new_run_id(),
        "stage": stage,
        "instance": instance,
        "flow": flow,
        "config": canonical(config),
        "code": dict(code),
        "inputs": {k: dict(v) for k, v in inputs.items()},
        "upstream": dict(upstream),
        "status": str(status),
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_s": float(duration_s),
        **extras,
    }


def _problem(record: Any) -> str | None:
    """Why ``record`` is not a valid finished-record, or None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, exact, kind in _RECORD_CHECKS:
        value = record.get(key)
        if type(value) in exact:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"missing or malformed {key!r}"
    if record["version"] != RECORD_VERSION:
        return f"version {record['version']} is not {RECORD_VERSION}"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    return None


#: Finished runs an instance's history keeps (``ductaflow diff A``).
HISTORY_RUNS = 5


def add_history(run_dir: str | os.PathLike[str], entry: Mapping[str, Any]) -> None:
    """Append a finished run to the instance's short history (the last
    ``HISTORY_RUNS``: config, recorded values, status, duration, code, not outputs).
    Rewritten atomically: a killed process leaves the previous history intact."""
    runs = [*read_history(run_dir), dict(entry)][-HISTORY_RUNS:]
    text = json.dumps(runs, indent=1, ensure_ascii=False, default=str) + "\n"
    atomic_write_text(Path(run_dir) / HISTORY, text, fsync_folder=False)


def read_history(run_dir: str | os.PathLike[str]) -> list[dict]:
    """The instance's last finished runs, oldest first; [] when none or unreadable."""
    try:
        runs = json.loads((Path(run_dir) / HISTORY).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def write_record(run_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write the finished-record atomically, then remove the started marker.

    Raises ``ValueError`` for a record ``read_record`` would not accept.
    """
    problem = _problem(dict(record))
    if problem:
        raise ValueError(f"not a valid record: {problem}")
    state = real_folder(Path(run_dir) / STATE_DIR)
    text = json.dumps(dict(record), indent=1, ensure_ascii=False, default=str) + "\n"
    atomic_write_text(Path(run_dir) / RECORD, text, fsync_folder=False)
    _remove(Path(run_dir) / STARTED)
    _fsync_dir(state)  # the record's rename and the marker's removal at once


def read_record(run_dir: str | os.PathLike[str],
                seen: dict[str, list[int] | None] | None = None) -> dict | None:
    """The finished-record of an instance folder, or None.

    None when it is missing, unreadable, truncated, not a JSON object, lacks a
    required field or has another ``version``. Never raises on garbage. ``seen``
    gets the signature of the file exactly as read (``signature``), or None.
    """
    path = f"{os.fspath(run_dir)}/{RECORD}"
    try:
        data = _read_all(path, seen)
    except OSError:
        if seen is not None:
            seen[path] = None
        return None
    return parse_record(data)


def signature(info: os.stat_result | None) -> list[int] | None:
    """What tells a file changed without reading it: inode, size, mtime and mode (an
    atomic replace changes the inode even within one timestamp tick)."""
    if info is None:
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode]


def _read_all(path: str, seen: dict[str, list[int] | None] | None = None) -> bytes:
    """A small file's bytes with the fewest system calls (the planner reads thousands)."""
    handle = os.open(path, _O_READ)
    try:
        if seen is not None:
            seen[path] = signature(os.fstat(handle))
        chunks = []
        while chunk := os.read(handle, _RECORD_READ):
            chunks.append(chunk)
    finally:
        os.close(handle)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_record(data: bytes) -> dict | None:
    """The record in a ``record.json``'s bytes, or None for anything not a valid one."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return None if _problem(record) else record


def has_record_file(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a record file exists at all (valid or not)."""
    return (Path(run_dir) / RECORD).exists()


def upstream_run_ids(runs_dir: Path, keys: Iterable[str]) -> dict[str, str]:
    """``{"stage/name": run_id}`` of those upstream instances that have a record."""
    found = {}
    for key in keys:
        record = read_record(runs_dir / key)
        if record is not None:
            found[key] = record["run_id"]
    return found


# --- flows a build ran ----------------------------------------------------------------


def read_flows_manifest(run_dir: str | os.PathLike[str]) -> list[dict]:
    """The flows a build ran, from ``flows.jsonl``; bad lines are skipped."""
    try:
        text = (Path(run_dir) / FLOWS_MANIFEST).read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("flow"), str):
            entries.append(entry)
    return entries


def append_flows_manifest(run_dir: str | os.PathLike[str], entry: Mapping[str, Any]) -> None:
    """Append one line to a build's ``flows.jsonl`` (one ``write`` call per line)."""
    path = Path(run_dir) / FLOWS_MANIFEST
    real_folder(path.parent)
    line = json.dumps(dict(entry), ensure_ascii=False, default=str) + "\n"
    with open(unlinked(path), "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
