"""The last all-up-to-date plan of a runs folder, with the signature of every file it read.

Rerunning an unchanged project is the common case, and planning it means parsing the
table, rendering every row and reading every record. When every file and folder that
plan read still has the inode, size, mtime and mode it had, planning again would come
out the same: the cached plan is used, at the cost of one ``stat`` per file. This is
make's and git's rule; like git, a file changed less than ``SETTLE_S`` before the
plan is not trusted (timestamps are coarse, 2 s on FAT), and then nothing is cached.

Only plans where nothing runs are kept: a plan that runs something changes the
records it read, so it could never be reused. The source of every ductaflow module
loaded when the plan is saved is among the files signed, so an upgrade (or an edit) of
ductaflow invalidates the cache, however its files are named or moved.

Standard library only, like the rest of the no-op path.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ductaflow.errors import Location
from ductaflow.model import Decision, FanIn, Instance, PlanWarning, Row
from ductaflow.planning.decisions import LastRun
from ductaflow.planning.planner import Plan, resolve_folders
from ductaflow.run_folder import records
from ductaflow.run_folder.files import PLAN_CACHE

FORMAT = 2
SETTLE_S = 3.0


def code_files() -> tuple[str, ...]:
    """The source file of every ductaflow module this process has loaded: the code
    that made the plan. Taken from the modules themselves, never from a list of
    names, so a file that moves or is renamed cannot silently drop out of the
    signature (it would sign as missing on both sides)."""
    files = []
    for name, module in list(sys.modules.items()):
        if name == "ductaflow" or name.startswith("ductaflow."):
            path = getattr(module, "__file__", None)
            if path:
                files.append(os.path.abspath(path))
    return tuple(sorted(set(files)))


def cache_key(tables: Any, project_root: str | os.PathLike[str],
              runs_dir: str | os.PathLike[str] | None, stage: str | None,
              select: Sequence[str] | None) -> dict[str, Any] | None:
    """What a cached plan must have been made for; None for tables not in files."""
    sources = tables if isinstance(tables, (list, tuple)) else [tables]
    if not sources or not all(isinstance(s, (str, os.PathLike)) for s in sources):
        return None
    root, runs = resolve_folders(project_root, runs_dir)
    return {"format": FORMAT, "root": str(root), "runs": str(runs),
            "tables": [os.path.abspath(s) for s in sources], "stage": stage,
            "select": list(select) if select else None}


class Cached(NamedTuple):
    """A plan from the cache, the files it read, and the results files it left."""

    plan: Plan
    files: list[list[Any]]
    outputs: list[list[Any]]


def load(key: Mapping[str, Any]) -> Cached | None:
    """The cached plan for ``key`` if nothing it read has changed since, else None."""
    path = Path(key["runs"]) / PLAN_CACHE
    try:
        data = json.loads(path.read_bytes())
        if data["key"] != key:
            return None
        files = _unpack_files(data["files"], key["runs"])
        if not _unchanged(files):
            return None
        return Cached(_decode(data["plan"], Path(key["root"]), Path(key["runs"])),
                      files, data["outputs"])
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            RecursionError):
        return None  # missing, or garbage: plan from scratch


def outputs_current(cached: Cached) -> bool:
    """The results files are as the conduct that saved the plan left them."""
    try:
        return _unchanged(cached.outputs)
    except (TypeError, ValueError):
        return False


def save(key: Mapping[str, Any], the_plan: Plan, read: Mapping[str, Any],
         outputs: Sequence[str] = ()) -> bool:
    """Keep ``the_plan`` if nothing runs in it and every file it read has settled;
    ``outputs`` are the results files it made, signed as they are now."""
    if not the_plan.decisions or any(d.run for d in the_plan.decisions):
        return False
    files = dict(read)
    files.update((path, _signature(path)) for path in code_files())
    settled = time.time_ns() - int(SETTLE_S * 1e9)
    if any(sig is not None and sig[2] > settled for sig in files.values()):
        return False
    encoded = _encode(the_plan)
    text = json.dumps({"key": key, "files": _pack_files(files, key["runs"]),
                       "outputs": [[path, _signature(path)] for path in outputs],
                       "plan": encoded}, ensure_ascii=False, separators=(",", ":"))
    if _decode(json.loads(text)["plan"], the_plan.project_root, the_plan.runs_dir) != the_plan:
        return False  # a value JSON does not carry exactly: never cache it
    try:
        records.atomic_write_text(Path(key["runs"]) / PLAN_CACHE, text, fsync_folder=False)
    except OSError:
        return False
    return True


def _signature(path: str) -> list[int] | None:
    try:
        return records.signature(os.stat(path))
    except (OSError, ValueError):
        return None


def _unchanged(files: Sequence[Sequence[Any]]) -> bool:
    return all(_signature(path) == sig for path, sig in files)


def _pack_files(files: Mapping[str, Any], runs: str) -> dict[str, list[list[Any]]]:
    """Signatures by path, those inside the runs folder (thousands of records) relative
    to it: a third of the cache's size otherwise."""
    prefix = runs + os.sep
    inside, outside = [], []
    for path, sig in sorted(files.items()):
        if path.startswith(prefix):
            inside.append([path[len(prefix):], sig])
        else:
            outside.append([path, sig])
    return {"outside": outside, "inside": inside}


def _unpack_files(packed: Mapping[str, Any], runs: str) -> list[list[Any]]:
    prefix = runs + os.sep
    return [*packed["outside"], *([prefix + path, sig] for path, sig in packed["inside"])]


def _encode(the_plan: Plan) -> dict[str, Any]:
    """Each table's file, sheet, stage and column letters once; each row by index."""
    tables: list[list[Any]] = []
    seen: dict[tuple[str, str | None, str, int], int] = {}
    decisions = []
    last_runs = the_plan.last_runs
    for decision in the_plan.decisions:
        inst, row = decision.instance, decision.instance.row
        coded = None
        if row is not None:
            where = (row.file, row.sheet, row.stage, id(row.columns))
            index = seen.setdefault(where, len(tables))
            if index == len(tables):
                tables.append([row.file, row.sheet, row.stage, row.columns])
            coded = [index, row.line, row.values, row.enabled]
        last = last_runs.get(inst.key)
        decisions.append([inst.stage, inst.name, inst.flow, inst.config, inst.depends_on,
                          inst.inputs, inst.references, coded,
                          list(last) if last is not None else None,
                          [[f.path, f.pattern, f.matched] for f in inst.fan_ins],
                          decision.skip_note])
    return {"tables": tables, "decisions": decisions, "partial": the_plan.partial,
            "warnings": [[w.message, _location(w.location), w.hint] for w in the_plan.warnings],
            "disabled": list(the_plan.disabled)}


def _location(where: Location | None) -> list[Any] | None:
    return None if where is None else [where.file, where.sheet, where.row, where.column]


def _decode(data: Mapping[str, Any], root: Path, runs: Path) -> Plan:
    tables = data["tables"]
    decisions = []
    last_runs = {}
    for stage, name, flow, config, depends, inputs, references, coded, last, fan_ins, \
            note in data["decisions"]:
        row = None
        if coded is not None:
            index, line, values, enabled = coded
            file, sheet, row_stage, columns = tables[index]
            row = Row(file, sheet, row_stage, line, values, columns, enabled)
        instance = Instance(stage, name, flow, config, tuple(depends), tuple(inputs),
                            tuple(references), row,
                            tuple(FanIn(tuple(p), t, tuple(m)) for p, t, m in fan_ins))
        decisions.append(Decision(instance, False, (), note))
        if last is not None:
            last_runs[instance.key] = LastRun(*last)
    warnings = tuple(PlanWarning(message, None if where is None else Location(*where), hint)
                     for message, where, hint in data.get("warnings", ()))
    return Plan(root, runs, tuple(decisions), last_runs, partial=bool(data.get("partial")),
                warnings=warnings, disabled=tuple(data.get("disabled", ())))
