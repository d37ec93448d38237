"""The files a conduct keeps in the runs folder: results CSV, HTML report, results workbook.

The CSV and the HTML report are the live ones, rewritten atomically after every
instance, so a reader never sees half a file and a killed conductor leaves the
previous version intact. ``conductor_results.xlsx`` (the scenario rows as the user
wrote them, with the lights) is written once, when the conduct has finished: saving
a workbook of a big table after every instance would slow the conduct down.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ductaflow.model import Action, Instance, RunResult
from ductaflow.run_folder import records
from ductaflow.run_folder.files import REPORT_HTML, RESULTS_CSV, RESULTS_XLSX

log = logging.getLogger(__name__)

COLUMNS = ("stage", "instance", "action", "status", "reason", "duration_s", "run_dir", "flow",
           "error", "started_at", "ended_at", "attempts")
RESULT_COLUMNS = ("status", "action", "reason", "duration_s", "run_dir")
_FORMULA_START = ("=", "+", "-", "@")
_FORMULA_CHARS = frozenset(_FORMULA_START)


def write_results(results: Sequence[RunResult], the_plan: Any, *, running: bool,
                  started_at: float, running_now: Mapping[str, str] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> None:
    """Rewrite the CSV and the HTML report; the workbook too once nothing is running.

    A conduct that ran nothing and planned the instances the stage rosters name keeps
    an existing workbook (and the stage results) as they are: writing one means
    importing openpyxl (and numpy), more than the whole no-op rerun costs.
    A finished conduct whose CSV is the one on disk (a no-op after a no-op) keeps
    the report too: every row, light and time in it would be the same.

    ``running_now`` maps the keys of the instances running at this moment to their
    ISO start time, for the report's timeline and time estimate. A live write whose
    ``cancelled()`` turns true gives up (``row_cache.Cancelled``) and leaves the
    report as it was: the conduct's final write follows.
    """
    runs_dir: Path = the_plan.runs_dir
    workbook = runs_dir / RESULTS_XLSX
    did_something = any(r.action is not Action.SKIPPED or r.reason.startswith("accepted")
                        for r in results)
    instances = {d.instance.key: d.instance for d in the_plan.decisions}
    tables_due = not running and (did_something or not workbook.exists()
                                  or not _rosters_current(the_plan, instances.values()))
    statuses = {r.key: r.status.value if r.status else "" for r in results}
    tables = _stage_files(the_plan, instances.values(), statuses) \
        if tables_due else None  # before the report, which shows them
    earlier, rows = _earlier(runs_dir, instances, getattr(the_plan, "partial", False))
    everything = _in_project_order(runs_dir, [*results, *earlier]) if earlier else results
    csv_text = results_csv(everything, the_plan.project_root, runs_dir)
    changed = not _unchanged(runs_dir, csv_text)
    if running or changed:
        _write_live(everything, the_plan, csv_text, running=running, started_at=started_at,
                    running_now=running_now, tables=tables, params_earlier=_texts(rows),
                    cancelled=cancelled)
    if tables_due:
        values = {f"{t.stage}/{row.instance}": row.values for t in tables or ()
                  for row in t.rows}
        if earlier:
            values.update(_earlier_values(runs_dir, earlier))
        _keep_going(workbook, write_workbook, everything, instances, values, rows)


def _earlier(runs_dir: Path, instances: Mapping[str, Any],
             partial: bool) -> tuple[list[RunResult], dict[str, Any]]:
    from ductaflow.reporting.stage_results import earlier_results

    return earlier_results(runs_dir, instances, partial)


def _texts(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    from ductaflow.reporting.html_report import parameter_texts

    return parameter_texts(rows) if rows else {}


def _in_project_order(runs_dir: Path, results: list[RunResult]) -> list[RunResult]:
    from ductaflow.reporting.stage_results import project_order

    return project_order(runs_dir, results)


def _earlier_values(runs_dir: Path, earlier: Sequence[RunResult]) -> dict[str, Any]:
    """What the instances of earlier conducts recorded, for the workbook."""
    from ductaflow.run_folder.recorded import instance_values

    return {r.key: instance_values(runs_dir / r.run_dir, Path(r.flow).stem) for r in earlier}


def _rosters_current(the_plan: Any, instances: Any) -> bool:
    from ductaflow.reporting.stage_results import rosters_current

    return rosters_current(the_plan.runs_dir, instances, getattr(the_plan, "partial", False))


def _stage_files(the_plan: Any, instances: Any, statuses: Mapping[str, str]) -> list[Any]:
    """Write each stage's roster and results CSV; the stages' results tables."""
    from ductaflow.reporting.stage_results import write_stage_files

    try:
        return write_stage_files(the_plan.project_root, the_plan.runs_dir, instances,
                                 statuses, getattr(the_plan, "partial", False),
                                 _rendered(the_plan))
    except OSError as exc:
        log.warning("could not write the stage results in %s: %s", the_plan.runs_dir, exc)
        return []


def import_in_background() -> threading.Thread:
    """Import openpyxl while the instances run: the conductor only waits for them, and
    the workbook written at the end would otherwise pay the import then (0.3-0.5 s)."""

    def imports() -> None:
        try:
            import openpyxl.styles  # noqa: F401
        except Exception:  # noqa: BLE001 - the workbook's own import reports it
            pass

    thread = threading.Thread(target=imports, daemon=True, name="ductaflow-imports")
    thread.start()
    return thread


def _unchanged(runs_dir: Path, csv_text: str) -> bool:
    """The CSV on disk is ``csv_text`` and a report sits beside it."""
    try:
        with open(runs_dir / RESULTS_CSV, encoding="utf-8", newline="") as handle:
            same = handle.read(len(csv_text) + 1) == csv_text
    except (OSError, UnicodeDecodeError):
        return False
    return same and (runs_dir / REPORT_HTML).is_file()


def _write_live(results: Sequence[RunResult], the_plan: Any, csv_text: str, *, running: bool,
                started_at: float, running_now: Mapping[str, str] | None,
                tables: Sequence[Any] | None = None,
                params_earlier: Mapping[str, str] | None = None,
                cancelled: Callable[[], bool] | None = None) -> None:
    from ductaflow.reporting.html_report import report_context
    from ductaflow.reporting.row_cache import write_report

    runs_dir: Path = the_plan.runs_dir
    stale: list[RunResult] = []
    if not running:  # once, at the end: a scan of every instance folder
        from ductaflow.reporting.inventory import orphans

        known = {r.key for r in results} | {d.instance.key for d in the_plan.decisions}
        stale = orphans(runs_dir, known)
    elapsed_s = time.time() - started_at

    params = {**_parameters(the_plan), **(params_earlier or {})}

    def context_of(cache: Any) -> Mapping[str, Any]:
        return report_context(results, runs_dir, running=running, elapsed_s=elapsed_s,
                              running_now=running_now, decisions=the_plan.decisions,
                              tables=tables, stale=stale, cache=cache, params=params)

    stamps = {f"{t.stage}/{row.instance}": row.stamp for t in tables or () for row in t.rows
              if row.stamp}
    _keep_going(runs_dir / REPORT_HTML,
                lambda _report: write_report(runs_dir, context_of, cancelled, stamps))
    # The CSV last: a CSV on disk that matches means its report was written too.
    _keep_going(runs_dir / RESULTS_CSV, records.atomic_write_text, csv_text)


#: The plan of the conduct writing now, and its instances' rows as typed, rendered.
_RENDERED: list[Any] = []


def _rendered(the_plan: Any) -> dict[str, dict[str, Any]]:
    """The planned instances' rows with their templates rendered, as the stage rosters
    and every report of the conduct show them: rendered once per conduct."""
    if _RENDERED and _RENDERED[0] is the_plan:
        return _RENDERED[1]
    from ductaflow.planning.instances import rendered_row
    from ductaflow.planning.project import Project

    runs_text = Project(the_plan.project_root, the_plan.runs_dir).runs_text
    rows = {d.instance.key: rendered_row(d.instance.row, runs_text)
            for d in the_plan.decisions if d.instance.row is not None}
    _RENDERED[:] = [the_plan, rows, None]
    return rows


def _parameters(the_plan: Any) -> dict[str, str]:
    """The planned instances' parameters as the report shows them."""
    rows = _rendered(the_plan)
    if _RENDERED[2] is None:
        from ductaflow.reporting.html_report import parameter_texts

        _RENDERED[2] = parameter_texts(rows)
    return _RENDERED[2]


def _keep_going(path: Path, write: Any, *args: Any) -> None:
    """A file held open elsewhere (Excel locks what it shows, on Windows) is logged and
    left as it was: the conduct goes on, and the next write tries again."""
    try:
        write(path, *args)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def results_csv(results: Sequence[RunResult], project_root: Path, runs_dir: Path) -> str:
    """One row per instance; ``run_dir`` relative to the project root, like table paths."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    base = _relative(runs_dir, project_root)  # once: relpath per row cost 70 µs
    writer.writerows([inert(r.stage), inert(r.instance), r.action.value,
                      r.status.value if r.status else "", inert(r.reason), f"{r.duration_s:.2f}",
                      inert(posixpath.normpath(f"{base}/{r.run_dir}")), inert(r.flow),
                      inert(r.error), inert(r.started_at), inert(r.ended_at), r.attempts]
                     for r in results)
    return buffer.getvalue()


def _result_values(result: RunResult, run_dir: str) -> dict[str, Any]:
    return {
        "stage": result.stage, "instance": result.instance, "action": result.action.value,
        "status": result.status.value if result.status else "", "reason": result.reason,
        "duration_s": f"{result.duration_s:.2f}", "run_dir": run_dir, "flow": result.flow,
        "error": result.error, "started_at": result.started_at, "ended_at": result.ended_at,
        "attempts": result.attempts,
    }


def inert(text: str) -> str:
    """A cell a spreadsheet would run as a formula is written as text instead."""
    return "'" + text if text[:1] in _FORMULA_CHARS else text


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return path.as_posix()


# --- the workbook ---------------------------------------------------------------------------


def write_workbook(path: Path, results: Sequence[RunResult],
                   instances: Mapping[str, Instance],
                   values: Mapping[str, Mapping[str, Any]] | None = None,
                   rows: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """One sheet per stage: the user's columns as written, the result columns, then
    the values each instance recorded (``values``, by instance key). An instance this
    conduct did not plan shows the row its stage roster kept (``rows``).

    The status cell is filled green, orange or red, the run folder linked; values a
    failed run recorded are grey and italic (``reporting.workbook`` writes it).
    """
    from ductaflow.reporting.workbook import write_book

    by_stage: dict[str, list[RunResult]] = {}
    for result in results:
        by_stage.setdefault(result.stage, []).append(result)
    write_book(path, [_sheet(stage, members, instances, values or {}, rows or {})
                      for stage, members in by_stage.items()])


def _sheet(stage: str, results: Sequence[RunResult], instances: Mapping[str, Instance],
           values: Mapping[str, Mapping[str, Any]], kept: Mapping[str, Mapping[str, Any]]) -> Any:
    from ductaflow.reporting.workbook import Sheet, cell_value
    from ductaflow.run_folder.recorded import shown

    rows = [kept[r.key] if r.key in kept else _user_values(r, instances.get(r.key))
            for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    recorded = list(dict.fromkeys(k for r in results for k in values.get(r.key, {})))
    outcome_headers = [f"{c} (result)" if c in columns else c for c in RESULT_COLUMNS]
    taken = {*columns, *outcome_headers}
    headers = [*columns, *outcome_headers,
               *(f"{v} (recorded)" if v in taken else v for v in recorded)]
    lines = [_line([cell_value(row.get(c)) for c in columns], result,
                   [cell_value(shown(values.get(result.key, {}).get(name)))
                    for name in recorded])
             for result, row in zip(results, rows, strict=True)]
    return Sheet(stage, headers, lines)


def _line(user: list[Any], result: RunResult, recorded: list[Any]) -> list[Any]:
    """A result's cells: the status lit, the run folder linked, a failed run's
    recorded values greyed."""
    from ductaflow.reporting.workbook import Styled, cell_value, light_style

    status = result.status.value if result.status else ""
    outcome: list[Any] = [Styled(status, light_style(status)), result.action.value,
                          cell_value(result.reason), round(result.duration_s, 2),
                          Styled(cell_value(result.run_dir), "df link", result.run_dir)]
    if status == "error":
        recorded = [Styled(v, "df failed") for v in recorded]
    return [*user, *outcome, *recorded]


def write_stage_workbook(path: Path, tables: Sequence[Any]) -> None:
    """``ductaflow results --format xlsx``: a sheet per stage's results table, status
    coloured, header frozen and filterable."""
    from ductaflow.reporting.workbook import Sheet, Styled, cell_value, light_style, write_book

    sheets = []
    for table in tables:
        status_at = len(table.parameters)
        lines = []
        for row in table.rows:
            line = [cell_value(v) for v in table.cells(row)]
            line[status_at] = Styled(line[status_at], light_style(row.status or ""))
            lines.append(line)
        sheets.append(Sheet(table.stage, table.columns, lines))
    write_book(path, sheets)


def _user_values(result: RunResult, instance: Instance | None) -> Mapping[str, Any]:
    """The row as the user wrote it, or what is known of it without its row."""
    if instance is not None and instance.row is not None:
        return instance.row.values
    return {"instance": result.instance, "flow": result.flow}
