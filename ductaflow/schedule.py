"""The schedule of one conduct: what starts when, what a finish means, what is written.

Runs in the conductor, between the plan and the executor (``execution.contract``):
it never runs a flow itself. A failed flow is a result here, not an exception.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from ductaflow.errors import ConductInterrupted
from ductaflow.execution.contract import Executor
from ductaflow.model import (
    Action,
    ConductSettings,
    Decision,
    EventHandler,
    Results,
    RunResult,
    Status,
)
from ductaflow.planning.planner import Plan
from ductaflow.run_folder import records
from ductaflow.run_folder.files import append_footer, attempt_path, output_path, run_files

#: Least time between two live rewrites of the results and the report.
LIVE_GAP_S = 1.0


class Schedule:
    """The scheduling loop of one conduct: start what is ready, collect what finished.

    Instances start upstream first, as capacity allows; an instance whose upstream
    failed is blocked, never started; a failed attempt is retried up to ``retries``
    times (its files set aside as ``.attemptN``); Ctrl-C stops what runs and raises
    ``ConductInterrupted`` with every result so far. The results files are rewritten
    as instances finish, at a pace (``LIVE_GAP_S``).
    """

    def __init__(self, the_plan: Plan, executor: Executor, settings: ConductSettings,
                 notify: EventHandler, results_current: bool = False):
        self.plan = the_plan
        self.executor = executor
        self.fail_fast = settings.fail_fast
        self.notify = notify
        self.order = [d.instance.key for d in the_plan.decisions]
        self.decisions = {d.instance.key: d for d in the_plan.decisions}
        self.results: dict[str, RunResult] = {}
        self.pending = [d for d in the_plan.decisions if d.run]
        self.failed = False
        self.started_at = time.time()
        self.running_since: dict[str, str] = {}
        self.started: dict[str, float] = {}  # monotonic start of each running instance
        self.retries = settings.retries
        self.attempts: dict[str, list[dict[str, Any]]] = {}
        self.dirty = False
        self.next_write = 0.0
        self.results_current = results_current  # a no-op whose results are on disk
        self.importing = False  # openpyxl, in the background once an instance ended
        self.writer: threading.Thread | None = None  # the live rewrite going on
        self.ending = threading.Event()  # the final write is due: a live one gives up

    def go(self) -> list[RunResult]:
        """Run the plan to the end; one result per planned instance, in plan order."""
        for decision in self.plan.decisions:
            if not decision.run:
                self.results[decision.instance.key] = skipped_result(decision, self.plan)
                if decision.skip_note:  # cut off at plan time: its record catches up
                    from ductaflow.execution.instance import cut_off

                    cut_off(decision.instance, self.plan.runs_dir)
        try:
            self.loop()
        except KeyboardInterrupt:
            self.interrupt()
        if not self.results_current:
            self.write_outputs(running=False)
        return self.ordered()

    def loop(self) -> None:
        """Until nothing is pending or running: block, start, write, collect."""
        while self.pending or self.executor.running():
            self.block_unreachable()
            self.start_ready()
            self.write_due()  # after starting what can start: no instance waits for it
            if not self.executor.running():
                continue
            for result in self.executor.wait(0.5):
                self.finish(result)

    def start_ready(self) -> None:
        """Start pending instances whose upstream is done, as capacity allows."""
        if self.failed and self.fail_fast:
            for decision in list(self.pending):
                self.block(decision, "not started: --fail-fast after a failure")
            return
        for decision in list(self.pending):
            if len(self.executor.running()) >= self.executor.capacity:
                break
            if self.upstream_done(decision):
                self.pending.remove(decision)
                self.notify("start", decision)
                self.running_since[decision.instance.key] = records.utc_now()
                self.started[decision.instance.key] = time.monotonic()
                self.executor.submit(decision.instance, decision.reason)
                self.dirty = True

    def upstream_done(self, decision: Decision) -> bool:
        """Every planned upstream of ``decision`` has a result."""
        return all(key in self.results for key in decision.instance.depends_on
                   if key in self.decisions)

    def block_unreachable(self) -> None:
        """An instance whose upstream failed or was blocked never starts."""
        for decision in list(self.pending):
            bad = [key for key in decision.instance.depends_on
                   if key in self.results and self.results[key].action
                   in (Action.FAILED, Action.BLOCKED)]
            if bad:
                self.block(decision, f"upstream failed: {', '.join(bad)}")

    def block(self, decision: Decision, reason: str) -> None:
        """``decision`` will not run: record it as blocked, with why."""
        self.pending.remove(decision)
        instance = decision.instance
        result = RunResult.of(instance, Action.BLOCKED, None, reason)
        self.finish(result)

    def finish(self, result: RunResult) -> None:
        """An instance ended: record it, unless a failed attempt is retried."""
        if result.action in (Action.RAN, Action.FAILED):
            if self.note_attempt(result):
                return
            result = self.with_attempts(result)
        self.results[result.key] = result
        self.running_since.pop(result.key, None)
        if result.action is Action.FAILED:
            self.failed = True
        self.notify("finish", result)
        self.dirty = True
        if not self.importing:
            # The workbook written at the end needs openpyxl: import it now, once the
            # start-up (fork servers importing, first kernels) is over.
            from ductaflow.reporting.results_files import import_in_background

            import_in_background()
            self.importing = True

    def note_attempt(self, result: RunResult) -> bool:
        """Keep every attempt in the record; True when a failed one is tried again."""
        attempts = self.attempts.setdefault(result.key, [])
        attempts.append({"attempt": len(attempts) + 1, "status": result.status.value
                         if result.status else "", "error": result.error,
                         "started_at": result.started_at, "ended_at": result.ended_at,
                         "duration_s": result.duration_s})
        if result.action is Action.FAILED and len(attempts) <= self.retries:
            decision = self.decisions[result.key]
            self.running_since.pop(result.key, None)
            attempts[-1]["files"] = _set_aside(self.plan.runs_dir / result.run_dir,
                                               decision.instance.flow_stem, len(attempts))
            self.pending.insert(0, Decision(decision.instance, True, (
                *decision.reasons, f"retry {len(attempts)} of {self.retries} after "
                                   f"{result.error}")))
            return True
        _add_attempts(self.plan.runs_dir / result.run_dir, attempts)
        return False

    def with_attempts(self, result: RunResult) -> RunResult:
        """A result after retries: how many runs it took, and the time of them all."""
        attempts = self.attempts.get(result.key, [])
        if len(attempts) < 2:
            return result
        return dataclasses.replace(
            result, attempts=len(attempts), started_at=attempts[0]["started_at"],
            duration_s=round(sum(float(a["duration_s"] or 0) for a in attempts), 3))

    def interrupt(self) -> None:
        """First Ctrl-C: stop running instances, start nothing new, keep what finished."""
        for key in self.executor.stop():
            decision = self.decisions[key]
            instance = decision.instance
            self.results[key] = RunResult.of(instance, Action.FAILED, Status.ERROR,
                                             decision.reason, error="Interrupted")
            append_footer(output_path(self.plan.runs_dir / instance.run_dir, instance.flow_stem),
                          instance.flow_stem, time.monotonic() - self.started.get(key, 0.0),
                          "interrupted")
        for decision in list(self.pending):
            self.pending.remove(decision)
            self.results[decision.instance.key] = RunResult.of(
                decision.instance, Action.BLOCKED, None, "interrupted before it started")
        self.write_outputs(running=False)
        raise ConductInterrupted(Results(self.ordered()))

    def ordered(self) -> list[RunResult]:
        """The results so far, in plan order."""
        return [self.results[key] for key in self.order if key in self.results]

    def write_outputs(self, running: bool) -> None:
        """Rewrite the live results now (the end, Ctrl-C), once a live rewrite going
        on has given up: at 100,000 rows it would cost seconds for a page replaced
        at once."""
        if self.writer is not None:
            self.ending.set()
            self.writer.join()
        self._write(self.ordered(), running, dict(self.running_since))

    def write_due(self) -> None:
        """Rewrite the live results when something changed and the pace allows.

        Each write reads and renders every row, so rewriting after every instance of
        a big table would cost more than the instances: a write waits until
        ``LIVE_GAP_S`` or four times the last write's duration has passed. It runs in
        a thread of its own, on a copy of the results so far: meanwhile finished
        instances are collected and the next ones start.
        """
        if not self.dirty or time.monotonic() < self.next_write:
            return
        if self.writer is not None and self.writer.is_alive():
            return
        self.dirty = False
        self.writer = threading.Thread(
            target=self._write, name="ductaflow-live-results", daemon=True,
            args=(self.ordered(), bool(self.pending or self.executor.running()),
                  dict(self.running_since), self.ending.is_set))
        self.writer.start()

    def _write(self, results: list[RunResult], running: bool,
               running_now: dict[str, str], cancelled: Any = None) -> None:
        from ductaflow.reporting.results_files import write_results
        from ductaflow.reporting.row_cache import Cancelled

        began = time.monotonic()
        try:
            write_results(results, self.plan, running=running, started_at=self.started_at,
                          running_now=running_now, cancelled=cancelled)
        except Cancelled:
            return
        ended = time.monotonic()
        self.next_write = ended + max(LIVE_GAP_S, 4 * (ended - began))


def _add_attempts(run_dir: Path, attempts: list[dict[str, Any]]) -> None:
    record = records.read_record(run_dir)
    if record is not None:
        records.write_record(run_dir, {**record, "attempts": attempts})


def _set_aside(folder: Path, stem: str, attempt: int) -> list[str]:
    """Keep a failed attempt's output, notebook and HTML under names the next attempt
    does not overwrite: ``<flow>_execution_output.attempt1.txt``, ``<flow>.attempt1.ipynb``."""
    kept = []
    for path in run_files(folder, stem):
        target = attempt_path(path, attempt)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        kept.append(target.name)
    return kept


def skipped_result(decision: Decision, the_plan: Plan) -> RunResult:
    """An up-to-date instance: its light is the one its last run left, as the plan read it."""
    instance = decision.instance
    last = the_plan.last_runs.get(instance.key)
    if last is None:
        return RunResult.of(instance, Action.SKIPPED, None, decision.reason)
    return RunResult.of(instance, Action.SKIPPED,
                        Status(last.status) if last.status in records.STATUSES else None,
                        decision.reason, last.duration_s, started_at=last.started_at,
                        ended_at=last.ended_at)
