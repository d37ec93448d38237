"""The project on disk, read once per plan: its root, its runs folder, and what every
string in a config turns out to be (a path into the runs folder, a project file, or
neither). Caches every ``stat`` and hash, so a plan reads each file once."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ductaflow.errors import PlanError, UsageError
from ductaflow.run_folder import fingerprints

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DRIVE = re.compile(r"^[A-Za-z]:")
_UNSEEN: Any = object()


# --- the project on disk, read once per plan ----------------------------------------------


@dataclass(frozen=True)
class PathRef:
    """What a string in a config turned out to be, once, for the whole plan."""

    value: str
    runs_path: str | None = None  # inside the runs folder, relative to it
    input: str | None = None  # a project file, project-relative
    missing: str | None = None  # not there, though its folder is (a typo?), project-relative


class Project:
    """Project root and runs folder, with per-plan caches of everything read on disk."""

    def __init__(self, project_root: Path, runs_dir: Path):
        self.root = Path(project_root).resolve()
        self.runs = Path(runs_dir).resolve()
        if self.runs == self.root or self.runs in self.root.parents:
            raise UsageError(f"the runs folder {self.runs} must lie below the project root, "
                             "not be it or contain it")
        self.runs_str = str(self.runs)
        self.runs_rel = relative(self.runs, self.root)
        self.runs_text = self.runs_rel or self.runs.as_posix()
        depth = 2 + (self.runs_rel.count("/") + 1 if self.runs_rel else 0)
        self.up_to_root = "../" * depth if self.runs_rel else None
        self._stats: dict[str, os.stat_result | None] = {}
        self._hashes: dict[str, str] = {}
        self._names: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._refs: dict[str, PathRef | None] = {}
        #: record path -> its signature, for the plan cache; None: not kept
        self.records: dict[str, list[int] | None] | None = {}

    def stat(self, path: str) -> os.stat_result | None:
        """``os.stat`` of an absolute or project-relative path, None when missing."""
        if path not in self._stats:
            try:
                self._stats[path] = os.stat(os.path.join(self.root, path))
            except (OSError, ValueError):
                self._stats[path] = None
        return self._stats[path]

    def sha256(self, path: str) -> str:
        """sha256 of a project-relative file, ``""`` when unreadable."""
        if path not in self._hashes:
            self.stat(path)  # before reading: a later change then shows in its signature
            try:
                self._hashes[path] = fingerprints.file_sha256(self.root / path)
            except OSError:
                self._hashes[path] = ""
        return self._hashes[path]

    def same_as_read(self, runs_path: str, saved: Any) -> bool:
        """Whether a path inside the runs folder holds what a run read there
        (``fingerprints.same_as_read``), through this plan's caches."""
        return fingerprints.same_as_read(self.in_runs(runs_path), saved, self.stat,
                                         self._runs_sha256)

    def _runs_sha256(self, path: str) -> str:
        """sha256 of a file by absolute path, once per plan; raises ``OSError``."""
        if path not in self._hashes:
            self._hashes[path] = fingerprints.file_sha256(path)
        return self._hashes[path]

    def folders(self, stage: str) -> frozenset[str]:
        """Names of the instance folders of ``stage`` on disk, case-sensitive."""
        return self._scan(stage)[0]

    def _scan(self, stage: str) -> tuple[frozenset[str], frozenset[str]]:
        """(folder names, names that are symlinks) in ``<runs>/<stage>``, read once."""
        if stage not in self._names:
            self.stat(str(self.runs / stage))  # its mtime moves when a folder comes or goes
            try:
                with os.scandir(self.runs / stage) as entries:
                    found = [(e.name, e.is_symlink()) for e in entries if e.is_dir()]
            except OSError:
                found = []
            self._names[stage] = (frozenset(n for n, _ in found),
                                  frozenset(n for n, link in found if link))
        return self._names[stage]

    def in_runs(self, runs_path: str) -> str:
        """The absolute path (text) of a path relative to the runs folder."""
        return f"{self.runs_str}/{runs_path}"

    def runs_shown(self, runs_path: str) -> str:
        """A path inside the runs folder as a user sees it from the project root."""
        base = self.runs_text
        return f"{base}/{runs_path}" if runs_path else base

    def ref(self, text: str) -> PathRef | None:
        """``text`` as a path (rewritten for the instance folder), or None."""
        if "/" not in text and "\\" not in text and "." not in text:
            return None  # a bare word: never a path, and not worth remembering
        found = self._refs.get(text, _UNSEEN)
        if found is _UNSEEN:
            found = self._refs[text] = self._classify(text)
        return found

    def _classify(self, text: str) -> PathRef | None:
        if len(text) > 4096 or "\n" in text or _URL.match(text):
            return None
        path = text.replace("\\", "/")
        if path.startswith("/") or DRIVE.match(path):
            return self._absolute(text, path)
        norm = posixpath.normpath(path)
        if norm in (".", "..") or norm.startswith("../"):
            return None
        runs = self.runs_rel
        if runs is not None and (norm == runs or norm.startswith(runs + "/")):
            inside = norm[len(runs) + 1:]
            return PathRef(posixpath.join("../..", inside) if inside else "../..", inside)
        info = self.stat(norm)
        if info is None:
            return self._missing(text, norm)
        value = self.up_to_root + norm if self.up_to_root else (self.root / norm).as_posix()
        return PathRef(value, input=norm if stat.S_ISREG(info.st_mode) else None)

    def _missing(self, text: str, norm: str) -> PathRef | None:
        """A relative path that is not there: worth a warning when its folder is."""
        folder = posixpath.dirname(norm)
        info = self.stat(folder) if folder else None
        if info is None or not stat.S_ISDIR(info.st_mode):
            return None
        return PathRef(text, missing=norm)

    def listing(self, folder: str) -> list[str]:
        """The entries of a project folder, as project-relative paths (for a hint)."""
        try:
            return [f"{folder}/{name}" for name in sorted(os.listdir(self.root / folder))]
        except OSError:
            return []

    def _absolute(self, text: str, path: str) -> PathRef | None:
        absolute = Path(os.path.normpath(path))
        inside = relative(absolute, self.runs)
        if inside is not None:
            return PathRef(text, "" if inside == "." else inside)
        project = relative(absolute, self.root)
        if project is None or project == ".":
            return None
        info = self.stat(project)
        is_file = info is not None and stat.S_ISREG(info.st_mode)
        return PathRef(text, input=project if is_file else None)

    def check_inside(self, stage: str, names: Iterable[str]) -> None:
        """Refuse instance folders that resolve outside the runs folder (symlinks)."""
        real_runs = os.path.realpath(self.runs)
        links = self._scan(stage)[1]
        for folder in [self.runs / stage, *(self.runs / stage / n for n in names if n in links)]:
            real = os.path.realpath(folder)
            if real != real_runs and not real.startswith(real_runs.rstrip(os.sep) + os.sep):
                raise PlanError(f"instance folder {folder} resolves outside the runs "
                                f"folder ({real})")


def relative(path: Path, base: Path) -> str | None:
    """``path`` relative to ``base`` in POSIX form, None when it lies outside."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


def tool_settings(project_root: Path) -> dict[str, Any]:
    """``[tool.ductaflow]`` of the project's ``pyproject.toml`` (``preload``,
    ``strict``); empty when there is none or it does not parse."""
    path = Path(project_root) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same reader, installed as tomli
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = data.get("tool", {}).get("ductaflow", {})
    return found if isinstance(found, dict) else {}
