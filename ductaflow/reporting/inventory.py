"""What a runs folder holds, read from disk alone: for ``ductaflow status`` and ``report``.

Every ``<runs>/<stage>/<instance>/`` folder that holds bookkeeping (``.ductaflow/``)
or an output file is an instance. Its light comes from its record when it has one,
else from its logs; the last ``conductor_results.csv`` tells which instances the last
conduct named. Nothing here writes, except ``rebuild_report`` (the HTML report).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ductaflow.errors import UsageError
from ductaflow.model import Action, RunResult, Status
from ductaflow.run_folder import records
from ductaflow.run_folder.files import (
    REPORT_HTML,
    RESULTS_CSV,
    STARTED,
    STATE_DIR,
    stem_of_output,
)
from ductaflow.run_folder.lights import instance_status

NOT_IN_LAST_CONDUCT = "orphan: no table defines it"
INCOMPLETE = "incomplete: killed, or running now"


@dataclass(frozen=True)
class InstanceOnDisk:
    """One instance folder as found on disk.

    ``status`` is ``"success"``, ``"warning"``, ``"error"``, or ``""`` when the last
    run did not finish (``incomplete``: killed, or running now). ``in_last_conduct``
    is None when there is no results CSV to tell.
    """

    stage: str
    instance: str
    status: str
    action: str = ""
    flow: str = ""
    reason: str = ""
    error: str = ""
    started_at: str = ""
    ended_at: str = ""
    duration_s: float | None = None
    from_record: bool = False
    incomplete: bool = False
    in_last_conduct: bool | None = None

    @property
    def key(self) -> str:
        """``stage/instance``, as results name it."""
        return f"{self.stage}/{self.instance}"

    @property
    def run_dir(self) -> str:
        """The folder relative to the runs folder."""
        return f"{self.stage}/{self.instance}"

    @property
    def ended(self) -> str:
        """When the last run ended, in local time (``2030-01-01 10:00:02``), or ``""``."""
        try:
            moment = datetime.fromisoformat(self.ended_at.replace("Z", "+00:00"))
        except ValueError:
            return ""
        return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")

    @property
    def note(self) -> str:
        """What a user should know beyond the light, in words."""
        notes = []
        if self.incomplete:
            notes.append(INCOMPLETE)
        elif not self.from_record:
            notes.append("no record: light from its output")
        if self.in_last_conduct is False:
            notes.append(NOT_IN_LAST_CONDUCT)
        return "; ".join(notes)


def status_rows(runs_dir: str | os.PathLike,
                known_keys: Collection[str] | None = None) -> list[InstanceOnDisk]:
    """Every instance found in ``runs_dir``: in the order of the last conduct, then the
    others by stage and name.

    ``known_keys`` are the ``stage/instance`` keys the last conduct named; by default
    read from ``conductor_results.csv``.
    """
    runs = _runs_folder(runs_dir)
    if known_keys is None:
        found = read_results_csv(runs)
        known_keys = [r.key for r in found] if found is not None else None
    order = {key: i for i, key in enumerate(known_keys or ())}
    rows = [_inspect(runs, stage, name, order if known_keys is not None else None)
            for stage, name in instance_folders(runs)]
    return sorted(rows, key=lambda row: order.get(row.key, len(order)))


def orphans(runs: Path, known: Collection[str]) -> list[RunResult]:
    """Instance folders on disk that no table conducted into this runs folder defines
    (a row deleted or renamed): listed apart in the report, ``clean`` removes them."""
    known = set(known)  # checked first: a known folder is not looked into
    return [_as_result(_inspect(runs, stage, name, known))
            for stage in _subfolders(runs) for name in _subfolders(runs / stage)
            if f"{stage}/{name}" not in known and _is_instance(runs / stage / name)]


def instance_folders(runs: Path) -> Iterator[tuple[str, str]]:
    """(stage, instance) of every folder holding ``.ductaflow/`` or an output file."""
    for stage in _subfolders(runs):
        for name in _subfolders(runs / stage):
            if _is_instance(runs / stage / name):
                yield stage, name


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries
                          if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _is_instance(folder: Path) -> bool:
    if (folder / STATE_DIR).is_dir():
        return True
    try:
        return any(stem_of_output(n) is not None for n in os.listdir(folder))
    except OSError:
        return False


def _inspect(runs: Path, stage: str, name: str,
             known: Collection[str] | None) -> InstanceOnDisk:
    folder = runs / stage / name
    listed = None if known is None else f"{stage}/{name}" in known
    record = records.read_record(folder)
    if record is not None:
        return InstanceOnDisk(
            stage=stage, instance=name, status=record["status"],
            action="failed" if record.get("error") else "ran", flow=record["flow"],
            reason=str(record.get("reason", "")), error=str(record.get("error", "")),
            started_at=record["started_at"], ended_at=record["ended_at"],
            duration_s=float(record["duration_s"]), from_record=True, in_last_conduct=listed)
    if records.is_started(folder):
        return InstanceOnDisk(stage=stage, instance=name, status="", flow=_started_flow(folder),
                              incomplete=True, in_last_conduct=listed)
    return InstanceOnDisk(stage=stage, instance=name, status=instance_status(folder).value,
                          flow=_flow_from_outputs(folder), in_last_conduct=listed)


def _started_flow(folder: Path) -> str:
    try:
        info = json.loads((folder / STARTED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(info.get("flow", "")) if isinstance(info, dict) else ""


def _flow_from_outputs(folder: Path) -> str:
    stems = sorted(s for s in map(stem_of_output, os.listdir(folder)) if s is not None)
    return stems[0] if stems else ""


def _runs_folder(runs_dir: str | os.PathLike) -> Path:
    runs = Path(runs_dir)
    if not runs.is_dir():
        raise UsageError(f"no runs folder {runs}")
    return runs


# --- the last conduct's results -------------------------------------------------------------


def read_results_csv(runs: Path) -> list[RunResult] | None:
    """The results of the last conduct from ``conductor_results.csv``; None without one.

    Rows that do not name a safe ``stage``/``instance`` or a known action are skipped.
    """
    try:
        with open(runs / RESULTS_CSV, encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    return [result for line in lines if (result := _result(line)) is not None]


def _result(line: dict[str, str | None]) -> RunResult | None:
    cell = {k: _uninert(v or "") for k, v in line.items() if isinstance(k, str)}
    stage, name = cell.get("stage", ""), cell.get("instance", "")
    if not (_safe(stage) and _safe(name)):
        return None
    try:
        action = Action(cell.get("action", ""))
        status = Status(cell["status"]) if cell.get("status") else None
        duration = float(cell.get("duration_s") or 0.0)
        attempts = max(1, int(cell.get("attempts") or 1))
    except ValueError:
        return None
    return RunResult(stage=stage, instance=name, action=action, status=status,
                     reason=cell.get("reason", ""), duration_s=duration,
                     run_dir=f"{stage}/{name}", flow=cell.get("flow", ""),
                     error=cell.get("error", ""), started_at=cell.get("started_at", ""),
                     ended_at=cell.get("ended_at", ""), attempts=attempts)


def _uninert(text: str) -> str:
    """Undo the quote the CSV writer puts before text a spreadsheet would run."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@") else text


def _safe(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


# --- the report from disk ---------------------------------------------------------------------


def rebuild_report(runs_dir: str | os.PathLike) -> Path:
    """Rewrite ``conductor_status_report.html`` from records and the results CSV alone.

    Instances on disk that the last conduct did not name get a section of their own.
    Returns the report's path.
    """
    from ductaflow.reporting.html_report import generate_status_report

    runs = _runs_folder(runs_dir)
    results = read_results_csv(runs) or []
    named = {r.key for r in results}
    stale = [_as_result(found) for found in status_rows(runs, known_keys=named)
             if found.key not in named]
    html = generate_status_report(results, runs, stale=stale,
                                  note="Rebuilt from the runs folder by 'ductaflow report'.")
    target = runs / REPORT_HTML
    records.atomic_write_text(target, html)
    return target


def _as_result(found: InstanceOnDisk) -> RunResult:
    status = Status(found.status) if found.status in records.STATUSES else None
    action = Action.FAILED if found.action == "failed" else Action.RAN
    reasons = [NOT_IN_LAST_CONDUCT]
    if found.incomplete:
        reasons.append(INCOMPLETE)
    return RunResult(stage=found.stage, instance=found.instance, action=action, status=status,
                     reason="; ".join(reasons), duration_s=found.duration_s or 0.0,
                     run_dir=found.run_dir, flow=found.flow, error=found.error,
                     started_at=found.started_at, ended_at=found.ended_at)
