"""What a runs folder holds that the tables no longer ask for (``clean``).

``conduct`` never deletes: a row you remove, rename or disable leaves its instance
folder in place, and the report and results leave it out. ``clean`` lists those
folders with their size, and removes them only when told to (``yes``): the one place
ductaflow deletes anything. Only stages that the given tables define are looked at,
so another table's results are never taken for leftovers; a stage folder no table
defines is named, not touched.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Leftover:
    """An instance folder no table asks for: why, and how much it holds."""

    key: str  # stage/instance
    why: str  # "no table defines it" or "its row is disabled"
    size_bytes: int
    path: Path


@dataclass(frozen=True)
class Cleaning:
    """What ``clean`` found, and whether it removed it."""

    leftovers: tuple[Leftover, ...]
    other_stages: tuple[str, ...]  # stage folders no given table defines: not touched
    removed: bool

    @property
    def size_bytes(self) -> int:
        """All the leftovers hold."""
        return sum(item.size_bytes for item in self.leftovers)


def clean(tables: Any, *, project_root: str | os.PathLike[str] = ".",
          runs_dir: str | os.PathLike[str] | None = None, stage: str | None = None,
          yes: bool = False) -> Cleaning:
    """The instance folders of the tables' stages that no enabled row defines (a row
    removed or renamed, or disabled), with their size; removed with ``yes=True``,
    under the runs folder's lock (refused while a conduct runs)."""
    from ductaflow.planning.planner import plan
    from ductaflow.run_folder.lock import RunsLock

    the_plan = plan(tables, project_root=project_root, runs_dir=runs_dir, stage=stage,
                    strict=False)
    runs = the_plan.runs_dir
    lock = RunsLock(runs, wait=False, notify=lambda *_: None)
    if yes and runs.is_dir():
        lock.take()
    try:
        found = _leftovers(the_plan, runs)
        if yes:
            for item in found:
                _remove(item.path)
        return Cleaning(tuple(found), _other_stages(the_plan, runs), removed=yes)
    finally:
        lock.release()


def _leftovers(the_plan: Any, runs: Path) -> list[Leftover]:
    defined = {d.instance.key for d in the_plan.decisions}
    disabled = set(the_plan.disabled)
    found = []
    for stage in dict.fromkeys(d.instance.stage for d in the_plan.decisions):
        for name in sorted(_folders(runs / stage)):
            key = f"{stage}/{name}"
            if key in defined:
                continue
            why = "its row is disabled" if key in disabled else "no table defines it"
            path = runs / stage / name
            found.append(Leftover(key, why, _size(path), path))
    for key in the_plan.disabled:  # a disabled row of a stage with no enabled row
        stage, _, name = key.partition("/")
        path = runs / stage / name
        if key not in defined and path.is_dir() and all(i.key != key for i in found):
            found.append(Leftover(key, "its row is disabled", _size(path), path))
    return found


def _other_stages(the_plan: Any, runs: Path) -> tuple[str, ...]:
    stages = {d.instance.stage for d in the_plan.decisions}
    stages |= {key.partition("/")[0] for key in the_plan.disabled}
    return tuple(sorted(name for name in _folders(runs)
                        if name not in stages and not name.startswith(".")))


def _folders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)
                    or e.is_symlink()]
    except OSError:
        return []


def _size(path: Path) -> int:
    """Bytes of the files below ``path``, links not followed."""
    if path.is_symlink():
        return 0
    total = 0
    for top, _, names in os.walk(path):
        for name in names:
            try:
                info = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def _remove(path: Path) -> None:
    """The folder and what it holds; a link is removed as a link (what it points to,
    perhaps outside the runs folder, is left alone)."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def describe(cleaning: Cleaning, runs_shown: str) -> list[str]:
    """The lines ``ductaflow clean`` prints."""
    lines = [f"  {item.key:<28} {_human(item.size_bytes):>9}   {item.why}"
             for item in cleaning.leftovers]
    total = f"{len(cleaning.leftovers)} instance folder" + (
        "" if len(cleaning.leftovers) == 1 else "s")
    if not cleaning.leftovers:
        lines.append(f"nothing to clean in {runs_shown}/")
    elif cleaning.removed:
        lines.append(f"removed {total}, {_human(cleaning.size_bytes)}")
    else:
        lines.append(f"{total}, {_human(cleaning.size_bytes)}: nothing removed "
                     "(ductaflow clean ... --yes removes them)")
    if cleaning.other_stages:
        lines.append("not looked at (no table given defines these stages): "
                     + ", ".join(cleaning.other_stages))
    return lines


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"

