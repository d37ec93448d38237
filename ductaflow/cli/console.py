"""What the terminal shows for ``conduct`` and ``status``: the CLI's rendering layer.

A live rich progress display on a terminal; plain lines when output is piped (CI
logs), so logs stay readable. The library itself never prints; this module does.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

from ductaflow.model import Action, Decision, RunResult
from ductaflow.run_folder.files import REPORT_HTML, output_path

_COLOURS = {"success": "green", "warning": "dark_orange", "error": "red", "": "grey50"}


def conduct_from_cli(args: argparse.Namespace) -> int:
    """``ductaflow conduct``: the dry run, or a conduct shown live; the exit status."""
    from ductaflow.conductor import ConductInterrupted, conduct

    tables = [str(t) for t in args.tables]
    if args.dry_run:
        return _dry_run(args, tables)
    view = ConductView(_console())
    _second_interrupt_stops_at_once()
    try:
        results = conduct(
            tables, project_root=args.project_root, runs_dir=args.runs_dir, jobs=args.jobs,
            force=args.force, select=args.select, fail_fast=args.fail_fast,
            wait=not args.no_wait, timeout=args.timeout, mode=args.mode,
            export_html=args.html, executor=args.executor, scheduler=args.scheduler,
            warm=args.warm, preload=args.preload, accept=args.accept, retries=args.retries,
            on_event=view.on_event)
    except ConductInterrupted as exc:
        view.close()
        view.summary(exc.results)
        view.console.print("interrupted: running instances stopped and left not done")
        return 130
    view.close()
    view.summary(results)
    return 1 if any(r.action is Action.FAILED for r in results) else 0


def _dry_run(args: argparse.Namespace, tables: list[str]) -> int:
    from ductaflow.planning.planner import plan

    the_plan = plan(tables, project_root=args.project_root, runs_dir=args.runs_dir,
                    force=args.force, select=args.select)
    console = _console()
    console.print(_plan_headline(the_plan))
    _print_plain(console, [_decision_line(d) for d in the_plan.decisions])
    return 0


def _print_plain(console: Any, lines: list[str]) -> None:
    """Many plain lines at once: rich's per-line rendering costs seconds at 10,000."""
    if lines:
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()


def _plan_headline(the_plan: Any) -> str:
    decisions = the_plan.decisions
    to_run = sum(1 for d in decisions if d.run)
    stages = len({d.instance.stage for d in decisions})
    where = os.path.relpath(the_plan.runs_dir) if _same_drive(the_plan.runs_dir) else \
        str(the_plan.runs_dir)
    return (f"plan  {_count(len(decisions), 'instance')} in {_count(stages, 'stage')}: "
            f"{to_run} to run, {len(decisions) - to_run} up to date   ({_escape(where)}/)")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _decision_line(decision: Decision) -> str:
    verb = "run " if decision.run else "skip"
    return f"  {decision.instance.key:<28} {verb}  {decision.reason}"


class ConductView:
    """Renders conduct events: progress on a terminal, one line per finished instance."""

    def __init__(self, console: Any):
        self.console = console
        self.live = console.is_terminal
        self.progress = None
        self.task = None
        self.running: dict[str, float] = {}
        self.runs_dir: Path | None = None
        self.started = time.monotonic()

    def on_event(self, kind: str, payload: Any) -> None:
        """Show what the conductor reports, as it happens."""
        getattr(self, f"_on_{kind}")(payload)

    def _on_waiting(self, lock_path: Path) -> None:
        folder = _escape(str(lock_path.parent))
        self.console.print(f"waiting for another conduct to finish ({folder})")

    def _on_plan(self, the_plan: Any) -> None:
        self.runs_dir = the_plan.runs_dir
        self.console.print(_plan_headline(the_plan), highlight=False)
        to_run = [d for d in the_plan.decisions if d.run]
        _print_plain(self.console, [_decision_line(d) for d in to_run])
        if self.live and to_run:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), TextColumn("{task.description}"),
                console=self.console, transient=True)
            self.task = self.progress.add_task("", total=len(to_run))
            self.progress.start()

    def _on_start(self, decision: Decision) -> None:
        self.running[decision.instance.key] = time.monotonic()
        self._describe_running()

    def _on_finish(self, result: RunResult) -> None:
        self.running.pop(result.key, None)
        if result.action is Action.SKIPPED and not result.reason.startswith("accepted"):
            return
        status = result.status.value if result.status else ""
        colour = _COLOURS.get(status, "grey50")
        text = status or result.action.value
        line = (f"  [{colour}]●[/] {_escape(f'{result.key:<28}')} [{colour}]{text:<8}[/] "
                f"{result.duration_s:6.1f}s")
        if result.error:
            line += f"   {_escape(result.error)}"
        elif result.status is not None and result.status.value == "warning":
            line += f"   {_escape(self._first_warning(result))}"
        elif result.action is Action.BLOCKED or result.reason.startswith("accepted"):
            line += f"   {_escape(result.reason)}"
        self.console.print(line, highlight=False)
        if self.progress is not None and result.action is not Action.SKIPPED:
            self.progress.advance(self.task)
        self._describe_running()

    def _describe_running(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        parts = [f"{_escape(key)} {now - t:.0f}s" for key, t in list(self.running.items())[:4]]
        self.progress.update(self.task, description="running " + " · ".join(parts)
                             if parts else "")

    def _first_warning(self, result: RunResult) -> str:
        from ductaflow.run_folder.lights import is_warning_line

        try:
            with open(self._output(result), encoding="utf-8", errors="replace") as handle:
                return next((line.strip() for line in handle if is_warning_line(line)), "")
        except OSError:
            return ""

    def _folder(self, result: RunResult) -> Path:
        return (self.runs_dir or Path("runs")) / result.run_dir

    def _output(self, result: RunResult) -> Path:
        stem = result.flow.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return output_path(self._folder(result), stem)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def summary(self, results: list[RunResult]) -> None:
        if any(r.action is not Action.SKIPPED for r in results):
            self.console.print(_stage_table(results))
        actions = {a: sum(1 for r in results if r.action is a) for a in Action}
        lights = {s: sum(1 for r in results if r.status and r.status.value == s)
                  for s in ("success", "warning", "error")}
        self.console.print(
            f"summary  ran {actions[Action.RAN]} · skipped {actions[Action.SKIPPED]} · "
            f"failed {actions[Action.FAILED]} · blocked {actions[Action.BLOCKED]}   "
            f"green {lights['success']} · orange {lights['warning']} · red {lights['error']}"
            f"   {time.monotonic() - self.started:.1f}s", highlight=False)
        if self.runs_dir is not None:
            report = self.runs_dir / REPORT_HTML
            self.console.print(f"report   {_escape(_display_path(report))}", highlight=False)
        for result in results:
            if result.action is Action.FAILED:
                self.console.print(
                    f"failed   {_escape(result.key)}: {_escape(result.error)}\n"
                    f"         output: {_escape(_display_path(self._output(result)))}\n"
                    f"         debug:  ductaflow debug "
                    f"{_escape(_display_path(self._folder(result)))}",
                    highlight=False)


def _stage_table(results: list[RunResult]) -> Any:
    """Per stage: what was done and the lights, the way the report's summary counts."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ("stage", "ran", "skipped", "failed", "blocked", "green", "orange", "red",
               "time")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    stages: dict[str, list[RunResult]] = {}
    for result in results:
        stages.setdefault(result.stage, []).append(result)
    for stage, rows in stages.items():
        actions = [sum(1 for r in rows if r.action is a) for a in Action]
        lights = [sum(1 for r in rows if r.status and r.status.value == s)
                  for s in ("success", "warning", "error")]
        spent = sum(r.duration_s for r in rows if r.action is not Action.SKIPPED)
        table.add_row(_escape(stage), *map(str, actions), *map(str, lights), f"{spent:.1f}s")
    return table


def _display_path(path: Path) -> str:
    return os.path.relpath(path) if _same_drive(path) else str(path)


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
        colour = _COLOURS.get(row.status, "grey50")
        duration = f"{row.duration_s:.1f}s" if row.duration_s is not None else ""
        table.add_row(f"[{colour}]●[/]", _escape(row.key),
                      f"[{colour}]{row.status or 'incomplete'}[/]", row.action, row.ended,
                      duration, _escape(row.note))
    console = _console()
    console.print(table)
    lights = Counter(row.status for row in rows)
    console.print(f"{_count(len(rows), 'instance')}   green {lights['success']} · orange "
                  f"{lights['warning']} · red {lights['error']} · incomplete {lights['']}")
    return 1 if lights["error"] else 0


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _same_drive(path: Path) -> bool:
    try:
        os.path.relpath(path)
        return True
    except ValueError:
        return False


def _second_interrupt_stops_at_once() -> None:
    """First Ctrl-C: the conductor stops cleanly. A second one while it does: exit now."""
    count = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        count["n"] += 1
        if count["n"] > 1:
            os._exit(130)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
