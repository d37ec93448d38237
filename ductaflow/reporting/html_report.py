"""The HTML status report: traffic lights per instance, links, a timeline, provenance.

Rendered by a jinja2 template shipped in the package, with autoescape on and strict
undefined, so table content can never inject script into the page; a Content Security
Policy allows only the page's own small script (which remembers what a user expanded
across refreshes) as a second line of defence. One self-contained file: no network,
works from ``file://``. Links are relative to the runs folder, where it is written.

Building the page's data reads only small things on disk: records, build manifests,
the last lines of red and orange output.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ductaflow.model import Action, Decision, RunResult, Status
from ductaflow.run_folder import records
from ductaflow.run_folder.files import (
    STAGE_ROSTERS,
    config_path,
    html_path,
    is_footer,
    notebook_path,
    output_path,
    stem_of_output,
)
from ductaflow.run_folder.lights import (
    is_warning_line,
    output_files,
    own_outputs,
    scan_output,
    worst,
)

TAIL_LINES = 15
CHILD_TAIL_LINES = 8
TAIL_BYTES = 64 * 1024
REFRESH_S = 5
LIGHT_LABELS = {"success": "green", "warning": "orange", "error": "red", "none": "not run",
                "running": "running", "waiting": "waiting"}
LIGHT_ORDER = ("success", "warning", "error", "none", "running", "waiting")
ACTION_ORDER = ("ran", "skipped", "failed", "blocked")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TICKS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
            43200, 86400)
LANE_PX = 20
AXIS_PX = 22


def generate_status_report(
    results: Sequence[RunResult], runs_dir: str | os.PathLike, *, running: bool = False,
    elapsed_s: float | None = None, running_now: Mapping[str, str] | None = None,
    decisions: Sequence[Decision] | None = None, stale: Sequence[RunResult] = (),
    now: datetime | None = None, note: str = "", refresh_s: int = REFRESH_S,
) -> str:
    """The report's HTML for ``results`` (what ``conduct`` returns).

    Links are relative to ``runs_dir``, where the caller is expected to write it.
    While a conduct runs: ``running_now`` maps the keys of running instances to their
    ISO start time, ``decisions`` (the plan) adds the instances still waiting. ``stale``
    lists instances on disk that the last conduct did not name.
    """
    context = report_context(results, runs_dir, running=running, elapsed_s=elapsed_s,
                             running_now=running_now, decisions=decisions, stale=stale,
                             now=now, note=note, refresh_s=refresh_s)
    return render(context)


def render(context: Mapping[str, Any]) -> str:
    """The page's HTML from its data (jinja2, autoescaped)."""
    import markupsafe

    stages = [{**stage, "rows_html": markupsafe.Markup("".join(row_html(row)
                                                                 for row in stage["rows"]))}
              for stage in context["stages"]]
    stale = [{**stage, "rows_html": markupsafe.Markup("".join(row_html(row)
                                                              for row in stage["rows"]))}
             for stage in context["stale"]]
    return render_page({**context, "stages": stages, "stale": stale})


def render_page(context: Mapping[str, Any]) -> str:
    """The page around its rows: each stage's ``rows_html`` is already rendered."""
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    import markupsafe

    return _environment().get_template("report.html.j2").render(
        **context, script=markupsafe.Markup(script), script_hash=f"sha256-{digest}")


def row_html(row: Mapping[str, Any]) -> str:
    """One instance's ``<details>`` element."""
    return str(_environment().get_template("rows.html.j2").module.instance(row, LIGHT_LABELS))


@functools.lru_cache(maxsize=1)
def template_digest() -> str:
    """What the rendered rows depend on besides their data: the row template and the
    code that fills it in (this module), so a new version renders every row anew."""
    digest = hashlib.sha256(_asset("rows.html.j2").encode("utf-8"))
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def report_context(
    results: Sequence[RunResult], runs_dir: str | os.PathLike, *, running: bool = False,
    elapsed_s: float | None = None, running_now: Mapping[str, str] | None = None,
    decisions: Sequence[Decision] | None = None, stale: Sequence[RunResult] = (),
    now: datetime | None = None, note: str = "", refresh_s: int = REFRESH_S,
    tables: Sequence[Any] | None = None, cache: Any = None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, as plain values. ``tables`` are the stages'
    results tables when the caller has them; else they are read from the runs folder.
    ``cache`` (``row_cache.RowCache``) gives the rows of instances unchanged since the
    last report without reading their folders, and numbers environments as it did.
    ``params`` are the instances' parameters as shown (``parameter_texts``), when the
    caller has them."""
    runs = Path(runs_dir)
    now = now or datetime.now(timezone.utc)
    running_now = dict(running_now or {})
    if params is None:
        params = _parameters(results, runs, tables, decisions or ())
    rows = _rows(results, runs, running_now, decisions or (), now, params, cache)
    stale_rows = [_result_row(r, runs) for r in stale]
    environments = _number_environments(rows, cache.environments if cache is not None else None)
    stages = _by_stage(rows)
    if elapsed_s is None:
        elapsed_s = _span_s(results)
    return {
        "runs_dir": str(runs.absolute()),
        "stages": stages,
        "attention": _attention(rows),
        "environments": environments,
        "stale": _by_stage(stale_rows),
        "lights": _count(rows, "light", LIGHT_ORDER),
        "light_labels": LIGHT_LABELS,
        "actions": _count(rows, "action", ACTION_ORDER),
        "total": len(rows),
        "running": running,
        "refresh_s": refresh_s,
        "elapsed": _clock(elapsed_s) if elapsed_s is not None else "",
        "remaining": _remaining(rows, running) if running else "",
        "generated": _local(now).strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
        "timeline": timeline(rows, now),
        "note": note,
        "results": [] if running else result_sections(runs, [s["name"] for s in stages],
                                                      tables),
    }


# --- results across scenarios ------------------------------------------------------------

#: Most instances one chart draws a bar for; the table below it lists them all.
CHART_BARS = 60
#: A parameter column colours the bars when it has this many distinct values at most.
GROUPS_MAX = 6


def result_sections(runs: Path, stages: Sequence[str],
                    tables: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Per stage with recorded values: its results table and a bar chart per numeric
    value across its instances, coloured by a parameter with few distinct values.
    From ``tables``, or the stage rosters a finished conduct wrote; none for stages
    without one."""
    from ductaflow.reporting.stage_results import stage_tables

    if tables is None:
        known = {p.stem for p in (runs / STAGE_ROSTERS).glob("*.json")}
        tables = stage_tables(runs, [s for s in stages if s in known])
    sections = []
    for table in tables:
        if not table.values or not table.rows:
            continue
        group = _group_by(table)
        sections.append({
            "stage": table.stage, "columns": table.columns,
            "numeric": [_is_number(c) for c in _first_values(table)],
            "rows": [{"light": row.status or "none",
                      "cells": [_cell_text(v) for v in table.cells(row)]}
                     for row in table.rows],
            "group": group[0] if group else "", "groups": group[1] if group else [],
            "charts": [chart for name, header in zip(table.values, table.value_headers,
                                                     strict=True)
                       if (chart := _chart(table, name, header, group))],
        })
    return sections


def _first_values(table: Any) -> list[Any]:
    """Per column, the first non-empty value: what decides how it sorts and aligns."""
    cells = [table.cells(row) for row in table.rows]
    return [next((c[i] for c in cells if c[i] not in (None, "")), None)
            for i in range(len(table.columns))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(str(value) if not isinstance(value, (list, dict)) else repr(value), 120)


def _pretty(value: float) -> str:
    """A chart's number: ``2,256,348``, ``0.933``, ``1.2e-05``."""
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _group_by(table: Any) -> tuple[str, list[str]] | None:
    """The first parameter with 2 to ``GROUPS_MAX`` distinct values (scenario, variant)."""
    for name in table.parameters:
        if name in ("instance", "flow"):
            continue
        seen = list(dict.fromkeys(_cell_text(r.parameters.get(name)) for r in table.rows))
        if 2 <= len(seen) <= GROUPS_MAX and len(seen) < len(table.rows):
            return name, seen
    return None


def _chart(table: Any, name: str, header: str,
           group: tuple[str, list[str]] | None) -> dict[str, Any] | None:
    """Horizontal bars, one per instance, for a value recorded as a number."""
    points = [(row, row.values.get(name)) for row in table.rows]
    points = [(row, float(v)) for row, v in points if _is_number(v)]
    if not points or len(points) > CHART_BARS:
        return None
    low, high = min(0.0, *(v for _, v in points)), max(0.0, *(v for _, v in points))
    span = (high - low) or 1.0
    zero = (0 - low) / span * 100
    bars = []
    for index, (row, value) in enumerate(points):
        start = (min(value, 0) - low) / span * 100
        colour = group[1].index(_cell_text(row.parameters.get(group[0]))) if group else 0
        bars.append({"label": row.instance, "value": _pretty(value), "y": index * 22,
                     "x": round(start, 3), "w": round(max(abs(value) / span * 100, 0.2), 3),
                     "colour": colour, "light": row.status or "none"})
    return {"name": header, "bars": bars, "height": len(bars) * 22,
            "zero": round(zero, 3)}


# --- rows ------------------------------------------------------------------------------


def _rows(results: Sequence[RunResult], runs: Path, running_now: Mapping[str, str],
          decisions: Sequence[Decision], now: datetime, params: Mapping[str, str],
          cache: Any = None) -> list[dict[str, Any]]:
    """One row per instance: finished ones from results, the rest from the plan."""
    done = {r.key: r for r in results}

    def finished(result: RunResult) -> dict[str, Any]:
        text = params.get(result.key, "")
        row = cache.row(result, text) if cache is not None else None
        if row is None:
            row = _result_row(result, runs)
            row["params"] = text
        return row

    rows = []
    for decision in decisions:
        key = decision.instance.key
        if key in done:
            rows.append(finished(done.pop(key)))
        elif key in running_now:
            rows.append(_running_row(decision, running_now[key], runs, now))
        elif decision.run:
            rows.append(_waiting_row(decision, runs))
    rows += [finished(r) for r in results if r.key in done]
    for row in rows:
        if row["action"] in ("running", "waiting"):
            row["params"] = params.get(row["key"], "")
    _expect_durations(rows)
    return rows


def _base_row(stage: str, instance: str, flow: str) -> dict[str, Any]:
    key = f"{stage}/{instance}"
    return {"key": key, "id": "i-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
            "stage": stage, "instance": instance, "flow": flow, "reason": "", "error": "",
            "duration": "", "duration_s": None, "links": [], "tail": [], "children": [],
            "provenance": [], "environment": (), "open": False, "start": None, "end": None,
            "expected": None, "params": ""}


def _result_row(result: RunResult, runs: Path) -> dict[str, Any]:
    """A finished instance's row, its folder read (a conduct's reports reuse it while
    the folder stands: ``row_cache``)."""
    return _finished_row(result, str(runs))


def reused_row(result: RunResult) -> dict[str, Any]:
    """What the page shows of a row outside it (counts, attention, timeline), for a row
    whose HTML is reused: no more, as a report may hold 100,000 of them."""
    key = result.key
    ran = result.action in (Action.RAN, Action.FAILED)
    return {"key": key, "id": "i-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
            "stage": result.stage, "light": result.status.value if result.status else "none",
            "action": result.action.value, "reason": result.reason, "error": result.error,
            "error_at": result.error_at, "duration_s": result.duration_s, "links": [],
            "tail": [], "start": _parse(result.started_at) if ran else None,
            "end": _parse(result.ended_at) if ran else None}


def outcome_row(result: RunResult) -> dict[str, Any]:
    """A finished instance's row from its result alone, without its folder's files."""
    row = _base_row(result.stage, result.instance, result.flow)
    light = result.status.value if result.status else "none"
    row.update(light=light, action=result.action.value, reason=result.reason,
               error=result.error, duration_s=result.duration_s, attempts=result.attempts,
               error_at=result.error_at,
               duration=_clock(result.duration_s) if result.action is not Action.BLOCKED else "")
    if result.action in (Action.RAN, Action.FAILED):
        row.update(start=_parse(result.started_at), end=_parse(result.ended_at))
    return row


def _finished_row(result: RunResult, runs_text: str) -> dict[str, Any]:
    runs = Path(runs_text)
    row = outcome_row(result)
    light = row["light"]
    if result.action is Action.BLOCKED:
        return row
    folder = runs / result.run_dir
    stem = _stem(result.flow)
    record = records.read_record(folder) or {}
    row["links"] = _links(folder, stem, runs, record)
    if light in ("error", "warning"):
        row["tail"] = _tail(output_path(folder, stem), TAIL_LINES)
    row["provenance"], row["environment"] = _provenance(record)
    row["children"] = _children(folder, record, runs)
    return row


def _running_row(decision: Decision, started_at: str, runs: Path,
                 now: datetime) -> dict[str, Any]:
    instance = decision.instance
    row = _base_row(instance.stage, instance.name, instance.flow)
    start = _parse(started_at)
    seconds = (now - start).total_seconds() if start else None
    output = output_path(runs / instance.run_dir, instance.flow_stem)
    previous = records.read_record(runs / instance.run_dir) or {}
    row.update(light="running", action="running", reason=decision.reason, start=start,
               duration_s=seconds, duration=_clock(seconds) if seconds is not None else "",
               links=_existing([("output", output)], runs),
               previous_s=previous.get("duration_s"))
    return row


def _waiting_row(decision: Decision, runs: Path) -> dict[str, Any]:
    instance = decision.instance
    row = _base_row(instance.stage, instance.name, instance.flow)
    previous = records.read_record(runs / instance.run_dir) or {}
    row.update(light="waiting", action="waiting", reason=decision.reason,
               previous_s=previous.get("duration_s"))
    return row


#: The order a "needs attention" list takes: red first, then blocked, then orange.
ATTENTION = ("error", "blocked", "warning")


def _attention(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Red, then blocked, then orange instances, each with its one line of why."""
    def kind(row: dict[str, Any]) -> str | None:
        if row["light"] == "error":
            return "error"
        if row["action"] == "blocked":
            return "blocked"
        return "warning" if row["light"] == "warning" else None

    found = [(ATTENTION.index(k), i, row) for i, row in enumerate(rows) if (k := kind(row))]
    return [{**row, "why": _why(row)} for _, _, row in sorted(found, key=lambda f: f[:2])]


def _why(row: dict[str, Any]) -> str:
    """One line: the error, the first warning line, or why it was blocked."""
    if row["error"]:
        return f"{row['error']} ({row['error_at']})" if row.get("error_at") else row["error"]
    if row["light"] == "warning":
        return next((line["text"] for line in row["tail"] if line.get("warn")), row["reason"])
    return row["reason"]


def _parameters(results: Sequence[RunResult], runs: Path, tables: Sequence[Any] | None,
                decisions: Sequence[Decision]) -> dict[str, str]:
    """Each instance's parameters as typed (``scenario=low · growth=0.01``), by key:
    what the search box looks through."""
    found: dict[str, Mapping[str, Any]] = {}
    for table in tables or ():
        for table_row in table.rows:
            found[f"{table.stage}/{table_row.instance}"] = table_row.parameters
    for decision in decisions:
        inst = decision.instance
        if inst.key not in found and inst.row is not None:
            found[inst.key] = inst.row.values
    if any(r.key not in found for r in results):
        from ductaflow.reporting.stage_results import roster_rows

        found = {**roster_rows(runs), **found}
    return parameter_texts(found)


def parameter_texts(found: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Rows as typed, by instance key, as the report shows them."""
    return {key: " · ".join(f"{k}={_text(v)}" for k, v in params.items()
                            if k not in ("instance", "flow", "enabled"))
            for key, params in found.items()}


def _number_environments(rows: Sequence[dict[str, Any]],
                         numbers: dict[tuple[tuple[str, str], ...], int] | None = None,
                         ) -> list[dict[str, Any]]:
    """The distinct environments the rows ran in, numbered; each row points to its own.
    ``numbers`` are those an earlier report gave (a row reused from it keeps its
    ``env``); a new environment gets the next number."""
    numbers = {} if numbers is None else numbers
    used = set()
    for row in rows:
        environment = row.get("environment") or ()
        if environment:
            row["env"] = numbers.setdefault(environment, len(numbers) + 1)
        if row.get("env"):
            used.add(row["env"])
    return [{"n": n, "items": list(items)} for items, n in numbers.items() if n in used]


def _by_stage(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    stages: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        stages.setdefault(row["stage"], []).append(row)
    return [{"name": name, "rows": members, "lights": _count(members, "light", LIGHT_ORDER)}
            for name, members in stages.items()]


def _count(rows: Sequence[dict[str, Any]], field: str, order: Sequence[str]) -> dict[str, int]:
    counts = Counter(row[field] for row in rows)
    return {name: counts.get(name, 0) for name in order}


# --- files on disk -----------------------------------------------------------------------


def _stem(flow: str) -> str:
    return flow.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _links(folder: Path, stem: str, runs: Path,
           record: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """Notebook (HTML when exported, else .ipynb), output file and saved config. A
    notebook or HTML an earlier run left (another mode, or an export since turned off)
    is not the last run's: its record says what that run made."""
    record = record or {}
    files = [("output", output_path(folder, stem)), ("config", config_path(folder, stem))]
    if record.get("mode") == "script":
        return _existing(files, runs)
    notebook = html_path(folder, stem)
    if record.get("html") is False or not notebook.is_file():
        notebook = notebook_path(folder, stem)
    return _existing([("notebook", notebook), *files], runs)


def _existing(files: Iterable[tuple[str, Path]], runs: Path) -> list[dict[str, str]]:
    links = []
    for label, path in files:
        if path.is_file():
            href = quote(Path(os.path.relpath(path, runs)).as_posix(), safe="/")
            links.append({"label": label, "href": href})
    return links


def _tail(path: Path, count: int) -> list[dict[str, Any]]:
    """The last lines of an output file, read from its end only."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first one is cut
    lines = [_ANSI.sub("", line) for line in lines[-count:]]
    return [_tail_line(line) for line in lines]


def _tail_line(line: str) -> dict[str, Any]:
    """A line of output; the footer's ✅/❌ drawn as a light, which needs no emoji font."""
    if is_footer(line):
        return {"text": line[1:].lstrip(), "warn": False,
                "footer": "success" if line.startswith("✅") else "error"}
    return {"text": line, "warn": is_warning_line(line)}


def _children(folder: Path, record: Mapping[str, Any], runs: Path) -> list[dict[str, Any]]:
    """The flows a build ran, each with its own light and links."""
    entries = records.read_flows_manifest(folder)
    if not entries and isinstance(record.get("flows"), list):
        entries = [e for e in record["flows"] if isinstance(e, dict)
                   and isinstance(e.get("flow"), str)]
    if not entries:
        entries = _children_on_disk(folder)
    return [child for entry in entries if (child := _child(folder, entry, runs))]


def _children_on_disk(folder: Path) -> list[dict[str, Any]]:
    """A build without a manifest: every sub-folder holding an output file."""
    own = set(own_outputs(folder))
    found = []
    for output in output_files(folder):
        if output not in own:
            stem = stem_of_output(output.name) or ""
            found.append({"flow": stem, "execution_dir": output.parent.relative_to(folder)
                          .as_posix(), "output_file": output.relative_to(folder).as_posix()})
    return found


def _child(folder: Path, entry: Mapping[str, Any], runs: Path) -> dict[str, Any] | None:
    where = str(entry.get("execution_dir") or ".")
    child_dir = folder / where
    try:
        inside = child_dir.resolve().is_relative_to(runs.resolve())
    except (OSError, ValueError):
        inside = False
    flow = str(entry["flow"])
    stem = _stem(flow)
    output = output_path(child_dir, stem)
    statuses = [scan_output(output)] if inside and output.is_file() else []
    if entry.get("status") in records.STATUSES:
        statuses.append(Status(entry["status"]))
    light = worst(statuses).value if statuses else "none"
    return {"name": where, "flow": flow, "light": light,
            "links": _links(child_dir, stem, runs) if inside else [],
            "tail": _tail(output, CHILD_TAIL_LINES)
            if inside and light in ("error", "warning") else []}


def _provenance(record: Mapping[str, Any]) -> tuple[list[tuple[str, str]],
                                                     tuple[tuple[str, str], ...]]:
    """What produced the instance's outputs, as label/value pairs to show: its own
    (when it ran, its run id) and its environment (host, python, git, packages), which
    most instances share and the page shows once."""
    if not record:
        return [], ()
    items = []
    start, end = _parse(str(record.get("started_at", ""))), _parse(str(record.get("ended_at", "")))
    if start:
        ended = f" – {_local(end).strftime('%H:%M:%S')}" if end else ""
        items.append(("ran", f"{_local(start).strftime('%Y-%m-%d %H:%M:%S')}{ended}"))
    found = record.get("provenance")
    found = found if isinstance(found, Mapping) else {}
    if found.get("host"):
        items.append(("host", _text(found["host"])))
    python = " ".join(_text(found[k]) for k in ("python", "platform") if found.get(k))
    if python:
        items.append(("python", python))
    git = found.get("git")
    if isinstance(git, Mapping) and git.get("commit") is not None:
        items.append(("git", _git_text(git)))
    packages = found.get("packages")
    if isinstance(packages, Mapping) and packages:
        items.append(("packages", " · ".join(f"{_text(k)} {_text(v)}"
                                             for k, v in packages.items())))
    own = [item for item in items if item[0] == "ran"]  # the run id is in its record
    return own, tuple(item for item in items if item[0] != "ran")


def _git_text(git: Mapping[str, Any]) -> str:
    commit = _text(git.get("commit")) or "no commit yet"
    words = [_text(git["branch"])] if git.get("branch") else []
    words.append("uncommitted changes" if git.get("dirty") else "clean")
    return f"{commit[:12]} ({', '.join(words)})"


def _text(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- times -----------------------------------------------------------------------------------


def _parse(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _local(moment: datetime) -> datetime:
    return moment.astimezone()


def _clock(seconds: float | None) -> str:
    """``4.2 s`` under a minute, else ``1:05`` or ``1:02:03``."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _span_s(results: Sequence[RunResult]) -> float | None:
    """First start to last end of the instances that ran, for a report rebuilt from disk."""
    starts = [t for r in results if r.action in (Action.RAN, Action.FAILED)
              if (t := _parse(r.started_at))]
    ends = [t for r in results if r.action in (Action.RAN, Action.FAILED)
            if (t := _parse(r.ended_at))]
    if not starts or not ends:
        return None
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def _expect_durations(rows: list[dict[str, Any]]) -> None:
    """How long each running or waiting instance will likely take: its own last run,
    else the mean of its stage in this conduct, else the mean of all. A running one
    shows its time against it (``0:03 of ≈ 0:41``)."""
    ran = [r for r in rows if r["action"] in ("ran", "failed") and r["duration_s"] is not None]
    by_stage: dict[str, list[float]] = {}
    for row in ran:
        by_stage.setdefault(row["stage"], []).append(row["duration_s"])
    overall = sum(r["duration_s"] for r in ran) / len(ran) if ran else None
    for row in rows:
        if row["action"] not in ("running", "waiting"):
            continue
        stage = by_stage.get(row["stage"])
        previous = row.get("previous_s")
        if isinstance(previous, (int, float)):
            row["expected"] = float(previous)
        elif stage:
            row["expected"] = sum(stage) / len(stage)
        else:
            row["expected"] = overall
        if row["action"] == "running" and row["expected"] is not None and row["duration"]:
            row["duration"] = f"{row['duration']} of ≈ {_clock(row['expected'])}"


def _remaining(rows: Sequence[dict[str, Any]], running: bool) -> str:
    """A rough time left: the work expected, spread over the instances running now."""
    busy = [r for r in rows if r["action"] == "running"]
    waiting = [r for r in rows if r["action"] == "waiting"]
    if not running or not (busy or waiting):
        return ""
    if any(r["expected"] is None for r in busy + waiting):
        return "unknown"
    work = sum(r["expected"] for r in waiting)
    work += sum(max(r["expected"] - (r["duration_s"] or 0.0), 0.0) for r in busy)
    return "about " + _clock(work / max(1, len(busy)))


# --- timeline ----------------------------------------------------------------------------------


def timeline(rows: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """Bars of the instances that ran (or run), packed into as few lanes as overlap needs.

    Positions are percentages of the width, so the inline SVG scales with the page
    and its text does not stretch. None when nothing ran.
    """
    spans = []
    for row in rows:
        start = row["start"]
        if start is None:
            continue
        end = row["end"] or (now if row["light"] == "running" else None)
        if end is None and row["duration_s"] is not None:
            end = start + timedelta(seconds=row["duration_s"])
        spans.append((start, max(end or start, start), row))
    if not spans:
        return None
    spans.sort(key=lambda s: (s[0], s[1]))
    t0 = spans[0][0]
    total = max(1.0, max((s[1] - t0).total_seconds() for s in spans))
    lanes: list[datetime] = []
    bars = []
    for start, end, row in spans:
        lane = next((i for i, free in enumerate(lanes) if free <= start), len(lanes))
        if lane == len(lanes):
            lanes.append(end)
        lanes[lane] = end
        bars.append(_bar(start, end, row, lane, t0, total))
    running = sum(1 for bar in bars if bar["light"] == "running")
    return {"bars": bars, "ran": len(bars) - running, "running": running,
            "lanes": len(lanes), "ticks": _ticks(total),
            "height": len(lanes) * LANE_PX + AXIS_PX, "axis_y": len(lanes) * LANE_PX + 15,
            "span": _clock(total)}


def _bar(start: datetime, end: datetime, row: dict[str, Any], lane: int, t0: datetime,
         total: float) -> dict[str, Any]:
    offset = (start - t0).total_seconds()
    seconds = (end - start).total_seconds()
    x = 0.5 + 99 * offset / total
    width = max(99 * seconds / total, 0.25)
    status = LIGHT_LABELS.get(row["light"], row["light"])
    return {"x": f"{x:.3f}", "w": f"{min(width, 99.5 - x):.3f}", "y": lane * LANE_PX + 2,
            "light": row["light"], "label": row["key"], "href": "#" + row["id"],
            "title": f"{row['key']}: {status}, {_clock(seconds)} "
                     f"(from +{_clock(offset)})"}


def _ticks(total: float) -> list[dict[str, str]]:
    step = next((s for s in _TICKS_S if total / s <= 8), _TICKS_S[-1])
    ticks = []
    value = 0
    while value <= total:
        x = 0.5 + 99 * value / total
        anchor = "start" if value == 0 else "end" if x > 96 else "middle"
        ticks.append({"x": f"{x:.3f}", "anchor": anchor,
                      "label": "0" if value == 0 else _tick_label(value)})
        value += step
    return ticks


def _tick_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes:02d}" if hours else f"{minutes} min"


# --- rendering ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
