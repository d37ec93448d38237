"""Results across scenarios: per stage, one row per instance with the parameters the
analyst typed (templates rendered), the instance's status, and every value its flows
recorded.

Runs in the conductor (at the end of a conduct it writes each stage's roster, its CSV,
and the workbook's value columns) and in ``ductaflow.results`` / ``ductaflow results``,
which read the rosters back. The roster (``.conductor.stages/<stage>.json`` in the runs
folder) lists the instances the tables defined at the stage's last conduct, with their
rows: only they count. Instance folders no table defines are left out, and
said so. Statuses and values are read from the instance folders each time, so they are
the latest on disk.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ductaflow.errors import UsageError
from ductaflow.model import Instance
from ductaflow.run_folder import recorded, records
from ductaflow.run_folder.files import STAGE_ROSTERS, STATE_DIR, real_folder, stage_csv_path


@dataclass(frozen=True)
class StageRow:
    """One instance: its row as typed, its latest status, what its flows recorded."""

    instance: str
    run_dir: str
    parameters: dict[str, Any]
    status: str
    values: dict[str, Any]
    stamp: str = ""  # ``folder_stamp`` when the values were read


@dataclass(frozen=True)
class StageTable:
    """A stage's results table; ``left_out`` names folders no table defines."""

    stage: str
    parameters: tuple[str, ...]
    values: tuple[str, ...]
    rows: tuple[StageRow, ...]
    left_out: tuple[str, ...] = field(default=())

    @property
    def columns(self) -> list[str]:
        """Parameters, ``status``, then the recorded values (renamed on a clash)."""
        return [*self.parameters, "status", *self.value_headers]

    @property
    def value_headers(self) -> list[str]:
        taken = {*self.parameters, "status"}
        return [f"{name} (recorded)" if name in taken else name for name in self.values]

    def cells(self, row: StageRow) -> list[Any]:
        """The row's cells, in ``columns`` order."""
        return [*(row.parameters.get(p) for p in self.parameters), row.status,
                *(recorded.shown(row.values.get(v)) for v in self.values)]


def write_stage_files(project_root: Path, runs_dir: Path, instances: Iterable[Instance],
                      statuses: Mapping[str, str] | None = None,
                      partial: bool = False,
                      rendered: Mapping[str, dict[str, Any]] | None = None) -> list[StageTable]:
    """At the end of a conduct: each planned stage's roster and results CSV.

    ``statuses`` (by instance key: what the conduct's results say) spares reading
    every instance's record again; ``rendered`` (by key) the rows as typed, when the
    caller rendered them. A ``partial`` (``--select``) plan updates the instances it
    planned and keeps the rest of each roster. The roster keeps what each instance
    recorded, with its folder's stamp: the next conduct reads only the folders that
    changed since.
    """
    from ductaflow.planning.instances import rendered_row
    from ductaflow.planning.project import Project

    runs_text = Project(project_root, runs_dir).runs_text
    rendered = rendered or {}
    by_stage: dict[str, list[Instance]] = {}
    for instance in instances:
        by_stage.setdefault(instance.stage, []).append(instance)
    tables = []
    for stage, members in by_stage.items():
        roster = [{"instance": i.name, "flow": i.flow, "run_dir": i.run_dir,
                   "row": rendered.get(i.key) or (rendered_row(i.row, runs_text)
                                                  if i.row is not None else {"instance": i.name})}
                  for i in members]
        old = _roster(runs_dir, stage)
        if partial:
            roster = _merged(old, roster)
        kept = {e["instance"]: {"stamp": e.get("stamp"), "values": e.get("values")}
                for e in old}
        del old  # 100,000 rows as typed: not held while the new roster is written
        table = _table(runs_dir, stage, roster, statuses, kept)
        for entry, row in zip(roster, table.rows, strict=True):
            entry.update(stamp=row.stamp, values=row.values)
        folder = real_folder(runs_dir / STAGE_ROSTERS)
        records.atomic_write_text(folder / f"{stage}.json", json.dumps(
            {"stage": stage, "table": _table_shown(members, project_root),
             "instances": roster}, ensure_ascii=False, default=str))
        records.atomic_write_text(stage_csv_path(runs_dir, stage), stage_csv(table))
        tables.append(table)
    return tables


def _table_shown(members: Sequence[Instance], project_root: Path) -> str:
    """Where the stage's rows come from: ``scenarios/demo.xlsx, sheet 'model'``."""
    row = next((i.row for i in members if i.row is not None), None)
    if row is None or not row.file:
        return ""
    try:
        shown = Path(row.file).resolve().relative_to(project_root).as_posix()
    except (ValueError, OSError):
        shown = row.file
    return f"{shown}, sheet {row.sheet!r}" if row.sheet else shown


def rosters_current(runs_dir: Path, instances: Iterable[Instance],
                    partial: bool = False) -> bool:
    """Every planned stage's roster names the planned instances, in order (or, for a
    ``--select`` plan, among others): a conduct that ran nothing then has no stage
    files (nor workbook) to rewrite."""
    planned: dict[str, list[str]] = {}
    for instance in instances:
        planned.setdefault(instance.stage, []).append(instance.name)
    for stage, names in planned.items():
        known = [entry["instance"] for entry in _roster(runs_dir, stage)]
        if (not set(names) <= set(known)) if partial else known != names:
            return False
    return True


def _roster(runs_dir: Path, stage: str) -> list[dict[str, Any]]:
    """The stage's roster as its last conduct wrote it; [] when none is readable."""
    try:
        roster = json.loads((runs_dir / STAGE_ROSTERS / f"{stage}.json")
                            .read_text(encoding="utf-8"))["instances"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    ok = isinstance(roster, list) and all(isinstance(e, dict) and "instance" in e
                                          for e in roster)
    return roster if ok else []


def _roster_table(runs_dir: Path, stage: str) -> str:
    """The table the stage's roster came from, as its last conduct named it."""
    try:
        found = json.loads((runs_dir / STAGE_ROSTERS / f"{stage}.json")
                           .read_text(encoding="utf-8")).get("table", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


def _merged(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The old roster with the newly planned entries in their places, new ones last."""
    fresh = {entry["instance"]: entry for entry in new}
    kept = [fresh.pop(entry["instance"], entry) for entry in old]
    return [*kept, *fresh.values()]


#: The reason of an instance a conduct did not plan: the project is more than one table.
NOT_IN_THIS_CONDUCT = "not in this conduct"


def earlier_results(runs_dir: Path, planned: Iterable[str],
                    partial: bool = False) -> tuple[list[Any], dict[str, Any]]:
    """The rest of the project: every instance the stage rosters name (every table
    conducted into this runs folder, and the instances a ``--select`` left out) that
    this conduct did not plan, as a result from its latest record; and each one's row
    as typed. Results and the report show the whole project, not only the last
    command. A whole plan's own stages are read from it, not from their rosters."""
    from ductaflow.model import Action, RunResult, Status

    planned = set(planned)
    found: list[Any] = []
    rows: dict[str, Any] = {}
    folder = runs_dir / STAGE_ROSTERS
    stages = {key.partition("/")[0] for key in planned}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        stage = path.stem
        if stage in stages and not partial:
            continue
        table = _roster_table(runs_dir, stage)
        why = f"{NOT_IN_THIS_CONDUCT} ({table})" if table else NOT_IN_THIS_CONDUCT
        for entry in _roster(runs_dir, stage):
            key = f"{stage}/{entry['instance']}"
            if key in planned or not isinstance(entry.get("run_dir"), str):
                continue
            record = records.read_record(runs_dir / entry["run_dir"]) or {}
            status = record.get("status")
            found.append(RunResult(
                stage=stage, instance=entry["instance"], action=Action.SKIPPED,
                status=Status(status) if status in records.STATUSES else None,
                reason=why if record else f"{why}; it has not finished",
                duration_s=float(record.get("duration_s") or 0.0),
                run_dir=f"{stage}/{entry['instance']}", flow=str(entry.get("flow", "")),
                error=str(record.get("error") or ""),
                started_at=record.get("started_at", ""), ended_at=record.get("ended_at", "")))
            rows[key] = dict(entry.get("row") or {"instance": entry["instance"]})
    return found, rows


def roster_rows(runs_dir: Path) -> dict[str, dict[str, Any]]:
    """Every instance's row as typed, from the stage rosters, by instance key."""
    found: dict[str, dict[str, Any]] = {}
    folder = runs_dir / STAGE_ROSTERS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        for entry in _roster(runs_dir, path.stem):
            found[f"{path.stem}/{entry['instance']}"] = dict(entry.get("row") or {})
    return found


def project_order(runs_dir: Path, results: Sequence[Any]) -> list[Any]:
    """``results`` in the project's order: stages as they first come, each stage's
    instances as its roster lists them (new ones after), so a ``--select`` or a
    second table does not shuffle the rows."""
    stages = list(dict.fromkeys(r.stage for r in results))
    place: dict[str, int] = {}
    for stage in stages:
        for index, entry in enumerate(_roster(runs_dir, stage)):
            place[f"{stage}/{entry['instance']}"] = index
    rank = {stage: i for i, stage in enumerate(stages)}
    return sorted(results, key=lambda r: (rank[r.stage], place.get(r.key, len(place))))


def stage_tables(runs_dir: Path, stages: Sequence[str] = ()) -> list[StageTable]:
    """The results tables of ``stages`` (every conducted stage when none is named)."""
    known = sorted(p.stem for p in (runs_dir / STAGE_ROSTERS).glob("*.json"))
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise UsageError(f"no results for stage {', '.join(unknown)} in {runs_dir}",
                         hint=f"conducted stages: {', '.join(known) or 'none yet'}")
    tables = []
    for stage in stages or known:
        roster = _roster(runs_dir, stage)
        if roster:
            tables.append(_table(runs_dir, stage, roster))
    return tables


def results(stage: str | Sequence[str] | None = None, *,
            runs_dir: str | Path | None = None, project_root: str | Path = ".") -> Any:
    """The results table of ``stage`` as a pandas DataFrame: one row per instance the
    tables define, its parameters as typed, ``status``, every value its flows recorded.

    With no stage, every conducted stage, one under the other, with a ``stage`` column
    first. ``frame.attrs["left_out"]`` lists instance folders no table defines.
    """
    import pandas as pd

    from ductaflow.planning.planner import resolve_folders

    runs = resolve_folders(project_root, runs_dir)[1]
    named = [stage] if isinstance(stage, str) else list(stage or [])
    tables = stage_tables(runs, named)
    frames = [pd.DataFrame([t.cells(r) for r in t.rows], columns=t.columns) for t in tables]
    if len(named) == 1 and frames:
        frame = frames[0]
    else:
        for table, piece in zip(tables, frames, strict=True):
            piece.insert(0, "stage", table.stage)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame.attrs["left_out"] = [key for t in tables for key in t.left_out]
    return frame


def stage_csv(tables: StageTable | Sequence[StageTable]) -> str:
    """A stage's table as CSV; several stages in one, with a ``stage`` column first and
    the union of their columns. Text a spreadsheet would run as a formula stays text."""
    many = not isinstance(tables, StageTable)
    group = list(tables) if many else [tables]
    columns = list(dict.fromkeys(c for t in group for c in t.columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([_inert(c) for c in (["stage", *columns] if many else columns)])
    for table in group:
        if not many and len(columns) == len(table.columns):  # its cells, in order
            writer.writerows([_csv_cell(v) for v in table.cells(row)] for row in table.rows)
            continue
        for row in table.rows:
            cells = dict(zip(table.columns, table.cells(row), strict=True))
            line = [_csv_cell(cells.get(c)) for c in columns]
            writer.writerow([_inert(table.stage), *line] if many else line)
    return buffer.getvalue()


def _table(runs_dir: Path, stage: str, roster: list[dict[str, Any]],
           statuses: Mapping[str, str] | None = None,
           kept: Mapping[str, Mapping[str, Any]] | None = None) -> StageTable:
    rows = []
    kept = kept or {}
    for entry in roster:
        run_dir = runs_dir / entry["run_dir"]
        key = f"{stage}/{entry['instance']}"
        if statuses is not None and key in statuses:
            status = statuses[key]
        else:
            record = records.read_record(run_dir)
            status = record["status"] if record else ""
        stamp = folder_stamp(os.path.join(runs_dir, entry["run_dir"]))
        old = kept.get(entry["instance"]) or {}
        if old.get("stamp") == stamp and isinstance(old.get("values"), dict):
            values = old["values"]
        else:
            values = recorded.instance_values(run_dir, Path(entry["flow"]).stem)
        rows.append(StageRow(entry["instance"], entry["run_dir"], entry.get("row") or {},
                             status, values, stamp))
    parameters = tuple(dict.fromkeys(k for r in rows for k in r.parameters))
    values_named = tuple(dict.fromkeys(k for r in rows for k in r.values))
    defined = {entry["instance"] for entry in roster}
    left_out = tuple(f"{stage}/{name}" for name in _folders(runs_dir / stage)
                     if name not in defined)
    return StageTable(stage, parameters, values_named, tuple(rows), left_out)


def folder_stamp(folder: str) -> str:
    """When an instance folder and its bookkeeping last changed: a run, a record, a
    value recorded, a file added or replaced by hand all move it."""
    return f"{_mtime(folder)}/{_mtime(os.path.join(folder, STATE_DIR))}"


def _mtime(path: str) -> str:
    try:
        return str(os.stat(path).st_mtime_ns)
    except OSError:
        return "-"


def _folders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir())
    except OSError:
        return []


def _inert(text: str) -> str:
    from ductaflow.reporting.results_files import inert

    return inert(text)


def _csv_cell(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return value
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    return _inert(value) if isinstance(value, str) else value
