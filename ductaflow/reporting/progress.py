"""What a conduct shows while it runs: the plan, live progress, a line per finished
instance, the summary.

Runs in the conductor, fed by ``conduct``'s events. In a terminal, rich's live progress
bar; when output is piped (CI logs), plain lines only, so logs stay readable; in a
notebook's cell (Jupyter, VS Code, papermill), a progress line updated in place above
the finished instances' lines. ``conduct(progress=False)`` shows nothing: the rest of
the library never prints.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ductaflow.errors import printable
from ductaflow.model import Action, Decision, RunResult, Status
from ductaflow.run_folder.files import REPORT_HTML, output_path

COLOURS = {"success": "green", "warning": "orange3", "error": "red", "": "grey50"}

#: Instances a notebook cell lists before "N more": a cell is not a log file.
CELL_LINES = 50

#: Least time between two updates of a notebook cell's progress line.
CELL_GAP_S = 0.2


def new_console() -> Any:
    """The console conduct's output goes to: the terminal, a pipe, or a notebook cell."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``text`` shown as it is, on one line, never read as rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(printable(text))


def count(n: int, word: str) -> str:
    """``1 instance``, ``2 instances``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plan_headline(the_plan: Any, jobs: int | None = None) -> str:
    """``plan  9 instances in 3 stages: 4 to run, 5 up to date, ≈ 41 s with 2 jobs
    (runs/)``: the estimate from each instance's last run (``planning.estimates``).
    Plain text, not markup."""
    counts = the_plan.counts  # a cached plan knows them without decoding its decisions
    to_run, stages = counts["run"], counts["stages"]
    estimate = ""
    if jobs and to_run:
        from ductaflow.planning.estimates import expected_durations, shown, wall_time

        seconds = wall_time(the_plan, jobs, expected_durations(the_plan))
        if seconds is not None:
            estimate = f", ≈ {shown(seconds)} with {count(jobs, 'job')}"
    return (f"plan  {count(counts['instances'], 'instance')} in {count(stages, 'stage')}: "
            f"{to_run} to run, {counts['skip']} up to date{estimate}   "
            f"({display_path(the_plan.runs_dir)}/)")


#: Warnings shown one line each before a plan; past this, how many more.
SHOWN_WARNINGS = 20


def warning_lines(warnings: Any) -> list[str]:
    """``warning: model.csv, row 1, column C (grwoth): ...``, one line each (control
    characters escaped), the first ``SHOWN_WARNINGS`` of them."""
    lines = [f"warning: {w}" for w in warnings[:SHOWN_WARNINGS]]
    more = len(warnings) - SHOWN_WARNINGS
    if more > 0:
        lines.append(f"warning: ... and {more} more (ductaflow conduct --dry-run lists "
                     "the first ones; --strict refuses them)")
    return lines


def decision_line(decision: Decision) -> str:
    """One instance of the plan: run or skip, and why."""
    verb = "run " if decision.run else "skip"
    return f"  {decision.instance.key:<28} {verb}  {decision.reason}"


def print_lines(console: Any, lines: list[str]) -> None:
    """Many plain lines at once: rich's per-line rendering costs seconds at 10,000."""
    if not lines:
        return
    text = "\n".join(map(printable, lines))
    if console.is_jupyter:
        print(text, flush=True)  # a notebook's stream output, not a display
        return
    console.file.write(text + "\n")
    console.file.flush()


def display_path(path: Path) -> str:
    """``path`` relative to here when it can be, absolute when on another drive."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class ConductView:
    """Shows one conduct's events as they happen, then its summary.

    Plain lines (the plan, the summary) are written as they are until rich is in use:
    a no-op, which shows nothing else, never imports it (a third of its time). In a
    notebook (IPython loaded) every line goes through rich's console, which knows the
    cell.
    """

    def __init__(self, console: Any | None = None, jobs: int | None = None):
        self._console = console
        self.progress: Any = None  # rich's bar in a terminal, a _CellLine in a notebook
        self.task: Any = None
        self.running: dict[str, float] = {}
        self.runs_dir: Path | None = None
        self.started = time.monotonic()
        self.jobs = jobs
        self.expected: dict[str, float] = {}  # seconds each instance to run should take
        self.waiting: set[str] = set()
        self.pace = [0.0, 0.0]  # seconds taken, seconds expected, of those finished

    @property
    def console(self) -> Any:
        """rich's console, made the first time a line needs it (a bar, a colour)."""
        if self._console is None:
            self._console = new_console()
        return self._console

    def _say(self, lines: list[str]) -> None:
        """Plain lines: straight to the output, or through rich's console once it is in
        use or in a notebook."""
        if self._console is None and "IPython" not in sys.modules:
            if lines:
                sys.stdout.write("\n".join(map(printable, lines)) + "\n")
                sys.stdout.flush()
            return
        print_lines(self.console, lines)

    def _in_cell(self) -> bool:
        """Output goes to a notebook's cell."""
        return (self._console is not None or "IPython" in sys.modules) and \
            self.console.is_jupyter

    def on_event(self, kind: str, payload: Any) -> None:
        """Show what the conductor reports, as it happens."""
        getattr(self, f"_on_{kind}")(payload)

    def _on_waiting(self, lock_path: Path) -> None:
        self._say([f"waiting for another conduct to finish ({lock_path.parent})"])

    def _on_plan(self, the_plan: Any) -> None:
        self.runs_dir = the_plan.runs_dir
        to_run = the_plan.to_run
        self.waiting = {d.instance.key for d in to_run}
        if self.waiting:  # a no-op has nothing to estimate
            from ductaflow.planning.estimates import expected_durations

            self.expected = expected_durations(the_plan)
        self._say([plan_headline(the_plan, self.jobs), *warning_lines(the_plan.warnings)])
        lines = [decision_line(d) for d in to_run]
        if len(lines) > CELL_LINES and self._in_cell():
            lines = [*lines[:CELL_LINES], f"  ... and {len(lines) - CELL_LINES} more "
                                          "(ductaflow conduct --dry-run lists them all)"]
        self._say(lines)
        if not to_run:
            return
        if self.console.is_jupyter:
            self.progress = _CellLine(len(to_run))
        elif self.console.is_terminal:
            self.progress, self.task = _terminal_bar(self.console, len(to_run))

    def _on_start(self, decision: Decision) -> None:
        self.running[decision.instance.key] = time.monotonic()
        self.waiting.discard(decision.instance.key)
        self._describe_running()

    def _on_finish(self, result: RunResult) -> None:
        started = self.running.pop(result.key, None)
        self.waiting.discard(result.key)
        if started is not None and result.key in self.expected:
            self.pace[0] += time.monotonic() - started
            self.pace[1] += self.expected[result.key]
        if result.action is Action.SKIPPED and not result.reason.startswith("accepted"):
            return
        self.console.print(self._finish_line(result))
        if isinstance(self.progress, _CellLine):
            self.progress.finished(result.action is Action.FAILED)
        elif self.progress is not None and result.action is not Action.SKIPPED:
            self.progress.advance(self.task)
        self._describe_running()

    def _finish_line(self, result: RunResult) -> str:
        status = result.status.value if result.status else ""
        colour = COLOURS.get(status, "grey50")
        text = result.outcome
        line = (f"  [{colour}]●[/] {escape(f'{result.key:<28}')} [{colour}]{text:<8}[/] "
                f"{result.duration_s:6.1f}s")
        if result.error:
            line += f"   {escape(result.error)}"
        elif result.status is not None and result.status.value == "warning":
            line += f"   {escape(self._first_warning(result))}"
        elif result.action is Action.BLOCKED or result.reason.startswith("accepted"):
            line += f"   {escape(result.reason)}"
        return line

    def _describe_running(self) -> None:
        now = time.monotonic()
        running = [self._running_text(key, now - t) for key, t in self.running.items()]
        if isinstance(self.progress, _CellLine):
            self.progress.show(running, self._eta(now))
        elif self.progress is not None:
            parts = [escape(text) for text in running[:4]]
            self.progress.update(self.task, eta=self._eta(now) or "eta -:--",
                                 description="running " + " · ".join(parts) if parts else "")

    def _running_text(self, key: str, seconds: float) -> str:
        """``model/a 3s of ≈41s``: elapsed against its usual time."""
        usual = self.expected.get(key)
        return f"{key} {seconds:.0f}s" + (f" of ≈{usual:.0f}s" if usual is not None else "")

    def _eta(self, now: float) -> str:
        """``eta ≈ 1 min 20 s``: the expected work left over the jobs, at this conduct's
        pace so far; empty without history."""
        if not self.expected:
            return ""
        from ductaflow.planning.estimates import shown

        expected = self.expected
        left = sum(expected.get(k, 0.0) for k in self.waiting)
        left += sum(max(expected.get(k, 0.0) - (now - t), 0.0) for k, t in self.running.items())
        pace = self.pace[0] / self.pace[1] if self.pace[1] > 0 else 1.0
        width = min(self.jobs or 1, len(self.waiting) + len(self.running)) or 1
        return f"eta ≈ {shown(left * min(max(pace, 0.2), 5.0) / width)}"

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
        """End the live display; what it showed last stays in a notebook cell."""
        if isinstance(self.progress, _CellLine):
            self.progress.show([], final=True)
        elif self.progress is not None:
            self.progress.stop()
        self.progress = None

    def interrupted(self, results: list[RunResult]) -> None:
        """The summary of a conduct stopped by Ctrl-C or a notebook's stop button."""
        self.summary(results)
        self._say(["interrupted: running instances stopped and left not done "
                   "(they run next time)"])

    def summary(self, results: list[RunResult]) -> None:
        """Per stage what was done, the lights, where the report is, what failed."""
        if any(r.action is not Action.SKIPPED for r in results):
            self.console.print(_stage_table(results))
        actions = Counter(r.action for r in results)
        lights = Counter(r.status for r in results)
        lines = [
            f"summary  ran {actions[Action.RAN]} · skipped {actions[Action.SKIPPED]} · "
            f"failed {actions[Action.FAILED]} · blocked {actions[Action.BLOCKED]}   "
            f"green {lights[Status.SUCCESS]} · orange {lights[Status.WARNING]} · "
            f"red {lights[Status.ERROR]}   {time.monotonic() - self.started:.1f}s"]
        if self.runs_dir is not None:
            lines.append(f"report   {display_path(self.runs_dir / REPORT_HTML)}")
        self._say(lines)
        for result in results:
            if result.action is Action.FAILED:
                self.console.print(self._failure(result))

    def _failure(self, result: RunResult) -> str:
        """What failed, where its output is, and how to debug it; for a build, the flow
        inside it that failed (from the flows it noted), not the build."""
        folder, output, error = self._folder(result), self._output(result), result.error
        inner = failed_flow(folder)
        where, line = "", result.error_at
        if inner is not None:
            where = f"in {inner['flow']}: "
            folder = folder / inner["execution_dir"]
            output = folder / Path(inner["output_file"]).name
            error = _footer_error(output) or error
            line = _failed_line(output)
        at = f"         at:     {escape(line)}\n" if line else ""
        return (f"failed   {escape(result.key)}: {escape(where + error)}\n{at}"
                f"         output: {escape(display_path(output))}\n"
                f"         debug:  ductaflow debug {escape(display_path(folder))}")


def failed_flow(folder: Path) -> dict[str, str] | None:
    """The last flow a build ran that failed (its manifest line), or None."""
    from ductaflow.run_folder.records import read_flows_manifest

    for entry in reversed(read_flows_manifest(folder)):
        if entry.get("status") == "error" and all(
                isinstance(entry.get(k), str) for k in ("flow", "execution_dir", "output_file")):
            return entry
    return None


def _failed_line(output: Path) -> str:
    """The ``at flows/x.py:42`` line a runner writes before a failed footer."""
    lines = _last_lines(output)
    return next((line[3:] for line in reversed(lines[-3:]) if line.startswith("at ")), "")


def _last_lines(output: Path) -> list[str]:
    try:
        with open(output, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            return handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _footer_error(output: Path) -> str:
    """The error its footer names (``❌ Failed x | Time: 1s | ValueError: boom``)."""
    from ductaflow.run_folder.files import is_footer

    last = next((line for line in reversed(_last_lines(output)) if line.strip()), "")
    return last.split(" | ", 2)[2] if is_footer(last) and last.count(" | ") >= 2 else ""


def _terminal_bar(console: Any, total: int) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[eta]}"), TextColumn("{task.description}"),
                   console=console, transient=True)
    task = bar.add_task("", total=total, eta="eta -:--")
    bar.start()
    return bar, task


class _CellLine:
    """A notebook cell's progress line, updated in place (an IPython display handle):
    done of total, elapsed, an estimate of what is left, what runs, how many failed."""

    def __init__(self, total: int):
        from IPython.display import display

        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.shown_at = 0.0
        self.text = ""
        self.html = ""
        self.handle = display(self, display_id=True)

    def finished(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed

    def show(self, running: list[str], eta: str = "", final: bool = False) -> None:
        """Update the line; at most every ``CELL_GAP_S`` unless it is the last time."""
        now = time.monotonic()
        if not final and now - self.shown_at < CELL_GAP_S and self.done < self.total:
            return
        self.shown_at = now
        elapsed = now - self.started
        parts = [f"{self.done}/{self.total} done", _clock(elapsed)]
        if eta and self.done < self.total:
            parts.append(eta)
        elif 0 < self.done < self.total:
            parts.append(f"eta {_clock(elapsed / self.done * (self.total - self.done))}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if running:
            shown = ", ".join(running[:6])
            more = f" and {len(running) - 6} more" if len(running) > 6 else ""
            parts.append(f"running {shown}{more}")
        self.text = " · ".join(parts)
        import html

        colour = "#c62828" if self.failed else "#2e7d32"
        self.html = (f'<div style="font-family:monospace"><progress value="{self.done}" '
                     f'max="{self.total}" style="accent-color:{colour}"></progress> '
                     f"{html.escape(self.text)}</div>")
        if self.handle is not None:
            self.handle.update(self)

    def __repr__(self) -> str:
        return self.text or f"0/{self.total} done"

    def _repr_html_(self) -> str:
        return self.html or f'<progress value="0" max="{self.total}"></progress>'


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


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
        table.add_row(escape(stage), *map(str, actions), *map(str, lights), f"{spent:.1f}s")
    return table
