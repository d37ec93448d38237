"""What the terminal shows for ``conduct --dry-run`` and ``status``; ``conduct``'s own
display (``reporting.progress``) is the one a Python caller sees too.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

from ductaflow.errors import UsageError
from ductaflow.model import Action
from ductaflow.reporting.progress import (
    COLOURS,
    count,
    decision_line,
    escape,
    new_console,
    plan_headline,
    print_lines,
    warning_lines,
)


def conduct_from_cli(args: argparse.Namespace) -> int:
    """``ductaflow conduct``: the dry run, or a conduct shown live; the exit status."""
    from ductaflow.conductor import ConductInterrupted, conduct

    tables = [str(t) for t in args.tables]
    if args.dry_run:
        return _dry_run(args, tables)
    _second_interrupt_stops_at_once()
    try:
        results = conduct(
            tables, project_root=args.project_root, runs_dir=args.runs_dir, jobs=args.jobs,
            force=args.force, select=args.select, fail_fast=args.fail_fast,
            wait=not args.no_wait, timeout=args.timeout, mode=args.mode,
            export_html=args.html, executor=args.executor, scheduler=args.scheduler,
            warm=args.warm, preload=args.preload, accept=args.accept, retries=args.retries,
            progress=True, strict=args.strict)
    except ConductInterrupted:
        return 130  # the view said what was stopped
    return 1 if any(r.action is Action.FAILED for r in results) else 0


def _dry_run(args: argparse.Namespace, tables: list[str]) -> int:
    from ductaflow.planning.planner import plan

    the_plan = plan(tables, project_root=args.project_root, runs_dir=args.runs_dir,
                    force=args.force, select=args.select, strict=args.strict)
    console = new_console()
    print_lines(console, [plan_headline(the_plan, args.jobs or os.cpu_count() or 1),
                          *warning_lines(the_plan.warnings)])
    from ductaflow.planning.project import relative

    runs = relative(the_plan.runs_dir, the_plan.project_root) or the_plan.runs_dir.as_posix()
    lines = []
    for decision in the_plan.decisions:
        lines.append(decision_line(decision))
        lines += [_fan_in_line(fan_in, runs) for fan_in in decision.instance.fan_ins]
    lines += [f"  {key:<28} disabled" for key in the_plan.disabled]
    print_lines(console, lines)
    return 0


def _fan_in_line(fan_in: Any, runs: str) -> str:
    """``fan-in runs/model/*/x.csv: 3 instances (model/a, model/b, model/c)``."""
    from ductaflow.planning.reasons import listed

    keys = list(dict.fromkeys("/".join(p.split("/")[:2]) for p in fan_in.matched))
    patterns = ", ".join(f"{runs}/{p}" for p in fan_in.pattern.split(", "))
    return (f"      fan-in {patterns}: {count(len(keys), 'instance')} "
            f"({listed(keys)})")


def results_from_cli(runs_dir: Path, stages: list[str], fmt: str | None,
                     output: str | None) -> int:
    """``ductaflow results``: each stage's results table, as a table, CSV, XLSX or JSON."""
    import sys

    from ductaflow.reporting.stage_results import stage_tables

    tables = stage_tables(runs_dir, stages)
    fmt = fmt or ("xlsx" if output and output.lower().endswith(".xlsx") else
                  "table" if output is None and sys.stdout.isatty() else "csv")
    if fmt == "xlsx" and output is None:
        raise UsageError("--format xlsx writes a file: name it with -o FILE")
    left_out = [key for table in tables for key in table.left_out]
    if left_out:
        print(f"note: {count(len(left_out), 'instance folder')} no table defines left out: "
              f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}",
              file=sys.stderr)
    if fmt == "table":
        _print_result_tables(tables)
        return 0
    if fmt == "xlsx":
        from ductaflow.reporting.results_files import write_stage_workbook

        write_stage_workbook(Path(output), tables)
        return 0
    text = _results_text(tables, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8", newline="")
    return 0


def _results_text(tables: list[Any], fmt: str) -> str:
    """CSV (one stage as it is, several in one with a ``stage`` column first) or JSON."""
    import json

    from ductaflow.reporting.stage_results import stage_csv

    if fmt == "json":
        return json.dumps([{"stage": t.stage, "rows": [dict(zip(t.columns, t.cells(r),
                                                                strict=True)) for r in t.rows]}
                           for t in tables], ensure_ascii=False, indent=2, default=str) + "\n"
    return stage_csv(tables[0]) if len(tables) == 1 else stage_csv(tables)


def _print_result_tables(tables: list[Any]) -> None:
    from rich.table import Table

    console = new_console()
    for table in tables:
        shown = Table(title=escape(table.stage), title_justify="left", box=None,
                      pad_edge=False, header_style="bold")
        for column in table.columns:
            shown.add_column(escape(column))
        for row in table.rows:
            colour = COLOURS.get(row.status, "grey50")
            cells = [("" if v is None else escape(str(v))) for v in table.cells(row)]
            cells[len(table.parameters)] = f"[{colour}]{row.status or 'incomplete'}[/]"
            shown.add_row(*cells)
        console.print(shown)


def diff_from_cli(runs_dir: Path, a: str, b: str | None) -> int:
    """``ductaflow diff A [B]``: config, recorded values, inputs and code side by side."""
    from rich.table import Table

    from ductaflow.reporting.comparison import diff

    found = diff(a, b, runs_dir=runs_dir)
    console = new_console()
    sides = [f"{escape(s.label)} ({s.status or 'incomplete'}, {escape(s.ended_at)})"
             for s in (found.a, found.b)]
    console.print(f"diff     {sides[0]}  ->  {sides[1]}")
    console.print("config   same" if not found.config else "config")
    print_lines(console, [f"  {change}" for change in found.config])
    if found.values:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("value", found.a.label, found.b.label, "change"):
            table.add_column(escape(column), justify="left" if column == "value" else "right")
        for name, old, new, change in found.values:
            table.add_row(escape(name), escape(_shown(old)), escape(_shown(new)),
                          escape(change))
        console.print("values")
        console.print(table)
    else:
        console.print("values   none recorded")
    for title, paths in (("inputs", found.inputs), ("code", found.code)):
        console.print(f"{title:<8} " + ("same" if not paths else "differ:"))
        print_lines(console, [f"  {path}" for path in paths])
    return 0


def _shown(value: Any) -> str:
    from ductaflow.run_folder.recorded import shown

    value = shown(value)
    return "" if value is None else str(value)


def status_from_cli(runs_dir: Path) -> int:
    """Every instance found on disk, with its light; exit 1 when any is red."""
    from collections import Counter

    from rich.table import Table

    from ductaflow.reporting.inventory import status_rows

    rows = status_rows(runs_dir)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("", "instance", "status", "action", "ended", "duration", "note"):
        table.add_column(column, justify="right" if column == "duration" else "left",
                         no_wrap=column != "note")
    for row in rows:
        colour = COLOURS.get(row.status, "grey50")
        duration = f"{row.duration_s:.1f}s" if row.duration_s is not None else ""
        table.add_row(f"[{colour}]●[/]", escape(row.key),
                      f"[{colour}]{row.status or 'incomplete'}[/]", row.action, row.ended,
                      duration, escape(row.note))
    console = new_console()
    console.print(table)
    lights = Counter(row.status for row in rows)
    console.print(f"{count(len(rows), 'instance')}   green {lights['success']} · orange "
                  f"{lights['warning']} · red {lights['error']} · incomplete {lights['']}")
    return 1 if lights["error"] else 0


def _second_interrupt_stops_at_once() -> None:
    """First Ctrl-C: the conductor stops cleanly. A second one while it does: exit now."""
    presses = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        presses["n"] += 1
        if presses["n"] > 1:
            os._exit(130)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
