"""The last all-up-to-date plan of a runs folder, with the signature of every file it read.

Rerunning an unchanged project is the common case, and planning it means parsing the
table, rendering every row and reading every record. When every file and folder that
plan read still has the inode, size, mtime and mode it had, planning again would come
out the same: the cached plan is used, at the cost of one ``stat`` per file. This is
make's and git's rule; like git, a file changed less than ``SETTLE_S`` before the
plan is not trusted (timestamps are coarse, 2 s on FAT), and then nothing is cached.

Two files, so that a no-op reads only what a no-op needs. ``PLAN_CACHE`` is compact:
the signatures (flat lists of numbers, paths inside the runs folder relative to it),
the plan's headline and warnings, and each instance's skipped result as columns.
``PLAN_DETAIL`` is the whole plan (every row, config and reference), decoded only
when something asks for a decision itself (``CachedPlan``): at 100,000 instances it
is 60 MB, and decoding it was most of a no-op rerun. The two carry one token; a
detail file from another save is not used, the plan is made again instead.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ductaflow.errors import Location
from ductaflow.model import Action, Decision, FanIn, Instance, PlanWarning, Row, RunResult, Status
from ductaflow.planning.planner import Plan, planned, resolve_folders
from ductaflow.run_folder import records
from ductaflow.run_folder.files import PLAN_CACHE, PLAN_DETAIL

FORMAT = 3
SETTLE_S = 3.0
_DAMAGED = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            RecursionError)
_STATUS = {s.value: s for s in Status}


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


# --- the plan, from the cache -----------------------------------------------------------


class CachedPlan(Plan):
    """A cached plan: its headline, warnings and folders at once, its decisions (and
    last runs) decoded from ``PLAN_DETAIL`` the first time they are asked for.

    Nothing runs in a cached plan, so ``to_run`` is empty without reading anything.
    Equal to the ``Plan`` it was saved from; pickled as a plain ``Plan``.
    """

    def __init__(self, root: Path, runs: Path, headline: Mapping[str, Any],
                 detail: Callable[[], Plan]):
        given = {"project_root": root, "runs_dir": runs, "partial": headline["partial"],
                 "warnings": _warnings(headline["warnings"]),
                 "disabled": tuple(headline["disabled"]),
                 "_stages": tuple(headline["stages"]), "_size": headline["instances"],
                 "_detail": detail}
        for name, value in given.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        """Called for the two fields not yet set: decode the whole plan once."""
        if name not in ("decisions", "last_runs"):
            raise AttributeError(name)
        whole = self._detail()
        object.__setattr__(self, "decisions", whole.decisions)
        object.__setattr__(self, "last_runs", whole.last_runs)
        return object.__getattribute__(self, name)

    @property
    def to_run(self) -> tuple[Decision, ...]:
        return ()

    @property
    def stages(self) -> tuple[str, ...]:
        return self._stages

    @property
    def counts(self) -> dict[str, int]:
        return {"instances": self._size, "stages": len(self._stages), "run": 0,
                "skip": self._size}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Plan))

    __hash__ = Plan.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return Plan, tuple(getattr(self, f.name) for f in fields(Plan))


@dataclass(frozen=True)
class Cached:
    """A plan from the cache, the signatures it was checked with, the results files it
    left, and each instance's skipped result as columns (None: build them from the plan)."""

    plan: CachedPlan
    files: Mapping[str, Any]
    outputs: list[list[Any]]
    skipped: Mapping[str, Any] | None

    def read(self) -> dict[str, list[int] | None]:
        """Every file the plan read, with its signature, as ``planner.planned`` gives them."""
        return _unpack_files(self.files, str(self.plan.runs_dir))

    def skipped_results(self) -> list[RunResult] | None:
        """One skipped result per instance, in plan order, as ``schedule.skipped_result``
        makes them, without decoding the plan; None when the cache has none."""
        try:
            return None if self.skipped is None else _skipped_results(self.skipped)
        except _DAMAGED:
            return None


def _skipped_results(columns: Mapping[str, Any]) -> list[RunResult]:
    stages, flows = columns["stages"], columns["flows"]
    if not all(isinstance(name, str) for name in columns["name"]):
        raise TypeError("an instance name that is not a string")
    reason, skipped = "up to date", Action.SKIPPED
    return [RunResult(stages[stage], name, skipped, _STATUS.get(status), reason,
                      duration, f"{stages[stage]}/{name}", flows[flow], "", started,
                      ended)
            for stage, name, flow, status, duration, started, ended in zip(
                columns["stage"], columns["name"], columns["flow"], columns["status"],
                columns["duration"], columns["started"], columns["ended"], strict=True)]


def load(key: Mapping[str, Any], tables: Any = None) -> Cached | None:
    """The cached plan for ``key`` if nothing it read has changed since, else None;
    ``tables`` as the caller gave them (default: the key's), should it be made again."""
    runs = Path(key["runs"])
    try:
        data = json.loads((runs / PLAN_CACHE).read_bytes())
        if data["key"] != key or not _files_unchanged(data["files"], str(runs)):
            return None
        token = data["token"]
        the_plan = CachedPlan(Path(key["root"]), runs, data["headline"],
                              lambda: _detail(key, token, tables or key["tables"]))
        return Cached(the_plan, data["files"], data["outputs"], data["skipped"])
    except _DAMAGED:
        return None  # missing, or garbage: plan from scratch


def _detail(key: Mapping[str, Any], token: str, tables: Any) -> Plan:
    """The whole plan saved with ``token``; made again if that file is gone or newer."""
    root, runs = Path(key["root"]), Path(key["runs"])
    try:
        data = json.loads((runs / PLAN_DETAIL).read_bytes())
        if data["token"] == token:
            return _decode(data["plan"], root, runs)
    except _DAMAGED:
        pass
    return planned(tables, project_root=root, runs_dir=runs, stage=key["stage"],
                   select=key["select"])[0]


def outputs_current(cached: Cached) -> bool:
    """The results files are as the conduct that saved the plan left them."""
    try:
        return all(_signature(path) == sig for path, sig in cached.outputs)
    except (TypeError, ValueError):
        return False


# --- saving a plan ------------------------------------------------------------------------


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
    token = os.urandom(8).hex()
    detail = json.dumps({"token": token, "plan": _encode(the_plan)}, ensure_ascii=False,
                        separators=(",", ":"))
    if _decode(json.loads(detail)["plan"], the_plan.project_root, the_plan.runs_dir) \
            != the_plan:
        return False  # a value JSON does not carry exactly: never cache it
    check = json.dumps({"key": key, "token": token,
                        "files": _pack_files(files, key["runs"]),
                        "outputs": [[path, _signature(path)] for path in outputs],
                        "headline": _headline(the_plan), "skipped": _skipped(the_plan)},
                       ensure_ascii=False, separators=(",", ":"))
    runs = Path(key["runs"])
    try:  # the detail first: a check file never names a detail that is not there yet
        records.atomic_write_text(runs / PLAN_DETAIL, detail, fsync_folder=False)
        records.atomic_write_text(runs / PLAN_CACHE, check, fsync_folder=False)
    except OSError:
        return False
    return True


def _headline(the_plan: Plan) -> dict[str, Any]:
    """What a no-op shows before its summary: stages, instance count, warnings."""
    return {"stages": list(the_plan.stages), "instances": len(the_plan.decisions),
            "partial": the_plan.partial, "disabled": list(the_plan.disabled),
            "warnings": [[w.message, _location(w.location), w.hint]
                         for w in the_plan.warnings]}


def _skipped(the_plan: Plan) -> dict[str, list[Any]] | None:
    """Each instance's skipped result as columns; None when a decision has a note of
    its own (an early cutoff: the schedule catches its record up)."""
    if any(d.skip_note for d in the_plan.decisions):
        return None
    stages: dict[str, int] = {}
    flows: dict[str, int] = {}
    columns: dict[str, list[Any]] = {c: [] for c in ("stage", "name", "flow", "status",
                                                     "duration", "started", "ended")}
    for decision in the_plan.decisions:
        inst = decision.instance
        last = the_plan.last_runs.get(inst.key)
        columns["stage"].append(stages.setdefault(inst.stage, len(stages)))
        columns["name"].append(inst.name)
        columns["flow"].append(flows.setdefault(inst.flow, len(flows)))
        columns["status"].append(last.status if last is not None else "")
        columns["duration"].append(round(last.duration_s, 3) if last is not None else 0.0)
        columns["started"].append(last.started_at if last is not None else "")
        columns["ended"].append(last.ended_at if last is not None else "")
    return {"stages": list(stages), "flows": list(flows), **columns}


# --- signatures -------------------------------------------------------------------------


def _signature(path: str) -> list[int] | None:
    try:
        return records.signature(os.stat(path))
    except (OSError, ValueError):
        return None


def _pack_files(files: Mapping[str, Any], runs: str) -> dict[str, list[Any]]:
    """Signatures as flat lists of numbers, paths inside the runs folder (thousands of
    records) relative to it, files that were absent by themselves: a fifth of the
    size of a list of [path, signature] pairs, and quicker to read."""
    prefix = runs + os.sep
    packed: dict[str, list[Any]] = {"outside": [], "outside_sigs": [], "inside": [],
                                    "inside_sigs": [], "absent": []}
    for path, sig in sorted(files.items()):
        if sig is None:
            packed["absent"].append(path)
        elif path.startswith(prefix):
            packed["inside"].append(path[len(prefix):])
            packed["inside_sigs"].extend(sig)
        else:
            packed["outside"].append(path)
            packed["outside_sigs"].extend(sig)
    return packed


def _unpack_files(packed: Mapping[str, Any], runs: str) -> dict[str, list[int] | None]:
    prefix = runs + os.sep
    files: dict[str, list[int] | None] = dict.fromkeys(packed["absent"])
    for paths, sigs, before in ((packed["outside"], packed["outside_sigs"], ""),
                                (packed["inside"], packed["inside_sigs"], prefix)):
        for index, path in enumerate(paths):
            files[before + path] = sigs[4 * index:4 * index + 4]
    return files


def _files_unchanged(packed: Mapping[str, Any], runs: str) -> bool:
    """Every signed file as it was, every absent one still absent: one ``stat`` each."""
    if any(_signature(path) is not None for path in packed["absent"]):
        return False
    return (_same(packed["outside"], packed["outside_sigs"], "")
            and _same(packed["inside"], packed["inside_sigs"], runs + os.sep))


def _same(paths: Sequence[str], sigs: Sequence[int], prefix: str) -> bool:
    if len(sigs) != 4 * len(paths):
        return False
    stat = os.stat
    at = 0
    for path in paths:
        try:
            info = stat(prefix + path)
        except (OSError, ValueError):
            return False
        if (info.st_mtime_ns != sigs[at + 2] or info.st_ino != sigs[at]
                or info.st_size != sigs[at + 1] or info.st_mode != sigs[at + 3]):
            return False
        at += 4
    return True


# --- the whole plan as JSON ---------------------------------------------------------------

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
    from ductaflow.planning.decisions import LastRun

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
    return Plan(root, runs, tuple(decisions), last_runs, partial=bool(data.get("partial")),
                warnings=_warnings(data.get("warnings", ())),
                disabled=tuple(data.get("disabled", ())))


def _warnings(coded: Sequence[Sequence[Any]]) -> tuple[PlanWarning, ...]:
    return tuple(PlanWarning(message, None if where is None else Location(*where), hint)
                 for message, where, hint in coded)
