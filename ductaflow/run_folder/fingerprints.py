"""Fingerprints of what a run read, so the next plan tells an edit from a ``touch``.

A **file**: ``{"size", "mtime_ns", "sha256"}``. It is unchanged when its size and
mtime are the same, or when they moved but its content did not (a ``touch``, a fresh
checkout): the content is hashed only when size or mtime moved.

A **folder**: ``{"folder": stamp, "sha256": content}`` over every file below it but
the engine's own (``files.engine_files``: bookkeeping, captured output, executed
notebooks, set-aside attempts), where ``stamp`` hashes the files' names, sizes and
mtimes and ``content`` their names and bytes. A path that is not there: ``None``.

**Code**: ``{path: sha256}``. A flow's code is hashed when its run starts. The project
modules a flow imported (``project_modules``, asked in the flow's own process once it
ended) are hashed after the run; one whose mtime moved after the run started is
recorded as ``EDITED`` (it may have been imported before or after the edit), so the
next plan reruns it.

Standard library only: a flow's process imports ``project_modules``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ductaflow.run_folder.files import engine_files

#: The code fingerprint of a module edited while the run that imported it went on.
EDITED = "edited while it ran"
_CHUNK = 1 << 20

StatOf = Callable[[str], "os.stat_result | None"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"size", "mtime_ns", "sha256"}`` of a file, as saved in a record's inputs."""
    info = os.stat(path)
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": file_sha256(path)}


def code_fingerprint(project_root: Path, flows: Iterable[str]) -> dict[str, str]:
    """``{flow: sha256}`` for project-relative POSIX flow paths; ``""`` when missing."""
    code = {}
    for flow in flows:
        try:
            code[flow] = file_sha256(project_root / flow)
        except OSError:
            code[flow] = ""
    return code


def input_fingerprints(project_root: Path, inputs: Iterable[str]) -> dict[str, dict]:
    """``{path: file_fingerprint}`` for project-relative POSIX paths that exist."""
    found = {}
    for path in inputs:
        with contextlib.suppress(OSError):
            found[path] = file_fingerprint(project_root / path)
    return found


# --- what a consumer read of other instances' folders ----------------------------------


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def path_fingerprint(path: str) -> dict[str, Any] | None:
    """A file's or a folder's fingerprint; None when nothing is there."""
    info = _stat(path)
    if info is None:
        return None
    if stat.S_ISDIR(info.st_mode):
        listed = _folder_files(path, _stat)
        return {"folder": _stamp(listed), "sha256": _content(path, listed, file_sha256)}
    try:
        return {"size": info.st_size, "mtime_ns": info.st_mtime_ns,
                "sha256": file_sha256(path)}
    except OSError:
        return None


def reference_fingerprints(runs_dir: Path, paths: Iterable[str]) -> dict[str, Any]:
    """``{runs path: path_fingerprint}`` for paths relative to the runs folder."""
    return {path: path_fingerprint(f"{runs_dir}/{path}") for path in paths}


def same_as_read(path: str, saved: Any, stat_of: StatOf = _stat,
                 sha_of: Callable[[str], str] = file_sha256) -> bool:
    """Whether ``path`` holds what a run read there (``saved``: its fingerprint then).

    ``stat_of`` and ``sha_of`` let a plan use its caches (each file read once, and
    signed for the plan cache)."""
    info = stat_of(path)
    if saved is None or info is None:
        return saved is None and info is None
    if not isinstance(saved, dict):
        return False
    if stat.S_ISDIR(info.st_mode):
        if "folder" not in saved:
            return False
        listed = _folder_files(path, stat_of)
        return (_stamp(listed) == saved["folder"]
                or _content(path, listed, sha_of) == saved.get("sha256"))
    if "folder" in saved or info.st_size != saved.get("size"):
        return False
    if info.st_mtime_ns == saved.get("mtime_ns"):
        return True
    try:
        return sha_of(path) == saved.get("sha256")
    except OSError:
        return False


def _folder_files(folder: str, stat_of: StatOf) -> list[tuple[str, int, int]]:
    """(POSIX path below ``folder``, size, mtime_ns) of each file, sorted; the
    engine's own files and folders left out."""
    found = []
    for top, dirs, names in os.walk(folder):
        skip = engine_files(names, dirs)
        dirs[:] = sorted(d for d in dirs if d not in skip)
        base = os.path.relpath(top, folder).replace(os.sep, "/")
        for name in names:
            if name in skip:
                continue
            info = stat_of(os.path.join(top, name))
            if info is not None and stat.S_ISREG(info.st_mode):
                rel = name if base == "." else f"{base}/{name}"
                found.append((rel, info.st_size, info.st_mtime_ns))
    found.sort()
    return found


def _stamp(listed: list[tuple[str, int, int]]) -> str:
    return hashlib.sha256(json.dumps(listed).encode("utf-8")).hexdigest()


def _content(folder: str, listed: list[tuple[str, int, int]],
             sha_of: Callable[[str], str]) -> str:
    digest = hashlib.sha256()
    for rel, _, _ in listed:
        try:
            sha = sha_of(os.path.join(folder, rel))
        except OSError:
            sha = ""
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


# --- the project modules a flow imported ----------------------------------------------


def project_modules(project_root: str, runs_dir: str | None = None) -> list[str]:
    """The files of the modules this process imported from inside the project:
    project-relative POSIX paths. Not the runs folder, not an environment kept inside
    the project (``.venv``, ``site-packages``), not ductaflow itself. Called in the
    flow's own process once its code ran."""
    roots = {os.path.abspath(project_root), os.path.realpath(project_root)}
    root = os.path.realpath(project_root)
    skip = [os.path.realpath(p) for p in (runs_dir, sys.prefix, sys.exec_prefix,
                                          sys.base_prefix, str(Path(__file__).parents[1]))
            if p]
    found = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name == "__main__" or not isinstance(file, str):
            continue
        path = os.path.abspath(file)
        if not any(path.startswith(r + os.sep) for r in roots):
            continue
        real = os.path.realpath(path)
        if not real.startswith(root + os.sep) or any(
                real == s or real.startswith(s + os.sep) for s in skip):
            continue
        rel = os.path.relpath(real, root).replace(os.sep, "/")
        if "site-packages" in rel.split("/") or "dist-packages" in rel.split("/"):
            continue
        found.add(rel)
    return sorted(found)


def module_fingerprints(project_root: Path, modules: Iterable[str],
                        started_ns: int) -> dict[str, str]:
    """``{module: sha256}`` after a run that started at ``started_ns`` (``time.time_ns``):
    ``EDITED`` for one changed since, ``""`` for one gone."""
    code = {}
    for module in modules:
        path = project_root / module
        try:
            moved = os.stat(path).st_mtime_ns > started_ns
            code[module] = EDITED if moved else file_sha256(path)
        except OSError:
            code[module] = ""
    return code
