"""``conduct``: the story of one conduct, told top-down.

Refuse to run inside a flow -> take the runs folder's lock -> plan (from the plan
cache when nothing changed) -> start an executor -> schedule the instances -> remember
a no-op plan. Runs in the conductor's process; the chapters live in the modules they
name: ``planning``, ``run_folder.lock``, ``execution.startup``, ``schedule``.

A failed flow is a result, not an exception: it is recorded, its dependents are
blocked, the rest go on. Bad input raises before anything on disk changes. The plan
is made again once the lock is held if another conductor changed records meanwhile
(the runs folder's generation token moved), so two conductors started together never
run the same instance twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ductaflow import environment
from ductaflow.errors import ConductInterrupted, DuctaflowError, UsageError
from ductaflow.model import ConductSettings, EventHandler, ExecOptions, Results, RunResult
from ductaflow.planning import plan_cache
from ductaflow.planning.planner import Plan, check_strict, planned, resolve_folders
from ductaflow.run_folder import records
from ductaflow.run_folder.files import GENERATION, REPORT_HTML, RESULTS_CSV, RESULTS_XLSX
from ductaflow.run_folder.lock import RunsLock

__all__ = ["ConductInterrupted", "conduct"]


def conduct(
    tables: Any,
    *,
    project_root: str | os.PathLike = ".",
    runs_dir: str | os.PathLike | None = None,
    stage: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    select: Sequence[str] | None = None,
    fail_fast: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    mode: str = "notebook",
    export_html: bool = False,
    executor: Any = "local",
    scheduler: str | None = None,
    warm: bool = True,
    preload: Sequence[str] | None = None,
    accept: bool = False,
    retries: int = 0,
    on_event: EventHandler | None = None,
    progress: bool = True,
    strict: bool | None = None,
) -> Results:
    """Run every instance of the scenario tables that is not up to date.

    ``tables`` is a path, a list of paths, or a pandas DataFrame (with ``stage``).
    ``executor`` is ``"local"`` (worker processes here), ``"dask"`` (a cluster at
    ``scheduler``, or a ``LocalCluster`` of ``jobs`` workers), a ready
    ``distributed.Client``, or any object with the executor interface. ``warm``
    keeps initialized kernels ready ahead of need (Linux, local executor, notebook
    mode), with the ``preload`` modules (default: ``[tool.ductaflow] preload`` in
    the project's ``pyproject.toml``) already imported. ``accept`` records what would
    run as done without running it (like Snakemake's ``--touch``), for a renamed
    column or a cosmetic edit. ``retries`` reruns a failed instance up to that many
    more times (flaky resources); its record lists every attempt. ``progress`` shows
    the plan, live progress and the summary (in a notebook, in the cell's output);
    ``on_event`` is called with each event as well. ``strict`` refuses a plan with
    warnings before anything runs (default: ``[tool.ductaflow] strict``).
    Returns one ``RunResult`` per planned instance, in plan order, as ``Results``: a
    list that also gives a pandas DataFrame (``results.to_frame()``). Ctrl-C, or a
    notebook's stop button, stops the running instances (they stay "not done" and
    run next time) and raises ``ConductInterrupted``, whose ``results`` are those so far.
    """
    settings = _settings(jobs=os.cpu_count() or 1 if jobs is None else jobs,
                         fail_fast=fail_fast, wait=wait,
                         timeout=timeout, mode=mode, export_html=export_html,
                         executor=executor, scheduler=scheduler, warm=warm,
                         preload=None if preload is None else tuple(preload),
                         accept=accept, retries=retries)
    _refuse_in_flow()
    planner = _Planner(tables, project_root, runs_dir, stage, force, select, strict)
    if not progress:
        return _conduct(planner, settings, on_event or _ignore)
    return _conduct_shown(planner, settings, on_event)


def _conduct_shown(planner: _Planner, settings: ConductSettings,
                   on_event: EventHandler | None) -> Results:
    """A conduct with its progress shown, then its summary (also when interrupted)."""
    from ductaflow.reporting.progress import ConductView

    view = ConductView(jobs=settings.jobs)
    try:
        results = _conduct(planner, settings, _both(view.on_event, on_event))
    except ConductInterrupted as exc:
        view.close()
        view.interrupted(exc.results)
        raise
    finally:
        view.close()
    view.summary(results)
    return results


def _conduct(planner: _Planner, settings: ConductSettings, notify: EventHandler) -> Results:
    """Plan under the runs folder's lock, then run (or accept) what is stale."""
    lock = RunsLock(planner.runs_dir, settings.wait, notify)
    try:
        current = _plan_under(lock, planner)
        if settings.accept or current.to_run:
            _bump_generation(current.runs_dir)
        notify("plan", current)
        if settings.accept:
            return Results(_accept_all(current, notify))
        results = planner.skipped_results()  # a cached no-op: nothing to start
        if results is None:
            results = _run(current, settings, notify, planner.results_current())
        planner.remember(current)
        return Results(results)
    except KeyboardInterrupt:  # before the first instance started: nothing to stop
        raise ConductInterrupted(Results()) from None
    finally:
        lock.release()


def _settings(**given: Any) -> ConductSettings:
    """The settings, checked before anything is read or written."""
    settings = ConductSettings(**given)
    if settings.mode not in ("notebook", "script"):
        raise UsageError(f"unknown mode {settings.mode!r}: use notebook or script")
    _check_number("jobs", settings.jobs, 1, whole=True)
    _check_number("retries", settings.retries, 0, whole=True)
    if settings.timeout is not None:
        _check_number("timeout", settings.timeout, 0, whole=False)
    from ductaflow.execution.startup import check_executor

    check_executor(settings.executor)
    return settings


def _check_number(name: str, value: Any, low: int, *, whole: bool) -> None:
    """A count at least ``low``, or a number of seconds above ``low``: never a value
    that silently means something else (``timeout=0`` as no limit)."""
    kinds = (int,) if whole else (int, float)
    fine = isinstance(value, kinds) and not isinstance(value, bool) and (
        value >= low if whole else low < value < float("inf"))
    if not fine:
        wanted = f"a whole number of at least {low}" if whole else \
            "a number of seconds above 0 (None: no limit)"
        raise UsageError(f"{name}={value!r}: must be {wanted}")


def _ignore(kind: str, payload: Any) -> None:
    """The event handler of a conduct nobody watches."""


def _both(first: EventHandler, second: EventHandler | None) -> EventHandler:
    """One event handler that calls ``first``, then ``second`` when there is one."""
    if second is None:
        return first

    def notify(kind: str, payload: Any) -> None:
        first(kind, payload)
        second(kind, payload)

    return notify


def _refuse_in_flow() -> None:
    """A flow that a conduct runs (a build) must not conduct: the nested conduct would
    wait for the runs folder its own conductor holds, or plan from the flow's folder."""
    manifest = os.environ.get(environment.FLOWS_MANIFEST)
    if manifest:
        folder = Path(manifest).parent.parent
        raise UsageError(f"conduct() was called inside a flow that a conduct runs ({folder})",
                         hint="a build runs its flows with ductaflow.run_notebook(...); "
                              "to conduct a table, add it to the tables you conduct")


def _plan_under(lock: RunsLock, planner: _Planner) -> Plan:
    """The plan, made (or confirmed) while holding the lock.

    Bad input fails in the first plan, before anything is written. When the lock was
    free to take first, that plan is the one. Otherwise another conductor may have
    changed records while we planned or waited: plan again, unless none can have
    (the lock file was new, and the generation token, which a conductor changes before
    it changes any record, did not move).
    """
    generation = records.read_generation(planner.runs_dir)
    held = lock.take_if_free()  # only when its file exists: then taking it writes nothing
    first = planner.plan()
    if held:
        return first
    lock.take()
    fresh = lock.was_new and records.read_generation(planner.runs_dir) == generation
    return first if fresh else planner.plan()


def _bump_generation(runs_dir: Path) -> None:
    try:
        records.bump_generation(runs_dir)
    except OSError as exc:  # a full disk: say which file, before anything has run
        raise DuctaflowError(f"could not write {runs_dir / GENERATION}: "
                             f"{exc.strerror or exc}") from exc


def _run(current: Plan, settings: ConductSettings, notify: EventHandler,
         results_current: bool) -> list[RunResult]:
    """Run what the plan says, on the executor the settings name."""
    from ductaflow.execution.startup import executor_for
    from ductaflow.schedule import Schedule

    with executor_for(current, settings) as executor:
        return Schedule(current, executor, settings, notify, results_current).go()


def _accept_all(the_plan: Plan, notify: EventHandler) -> list[RunResult]:
    """``--accept``: record every stale instance as done, upstream first."""
    from ductaflow.execution.instance import accept_instance
    from ductaflow.reporting.results_files import write_results
    from ductaflow.schedule import skipped_result

    options = ExecOptions(the_plan.project_root, the_plan.runs_dir)
    results = []
    for decision in the_plan.decisions:
        if decision.run:
            result = accept_instance(decision.instance, decision.reason, options)
            notify("finish", result)
        else:
            result = skipped_result(decision, the_plan)
        results.append(result)
    write_results(results, the_plan, running=False, started_at=time.time())
    return results


class _Planner:
    """Plans for one conduct, from the plan cache when the tables are files and
    nothing the last no-op plan read has changed."""

    def __init__(self, tables: Any, project_root: str | os.PathLike, runs_dir: Any,
                 stage: str | None, force: bool, select: Sequence[str] | None,
                 strict: bool | None = None):
        self.tables = tables
        self.strict = strict
        self.runs_dir = resolve_folders(project_root, runs_dir)[1]
        self.options = {"project_root": project_root, "runs_dir": runs_dir, "stage": stage,
                        "force": force, "select": select}
        self.key = None if force else plan_cache.cache_key(tables, project_root, runs_dir,
                                                          stage, select)
        self.read: dict[str, Any] = {}
        self.hit: plan_cache.Cached | None = None

    def plan(self) -> Plan:
        """Plan, or take the cached plan when nothing it read has changed."""
        self.hit = plan_cache.load(self.key, self.tables) if self.key is not None else None
        if self.hit is not None:
            found: Plan = self.hit.plan
        else:
            found, self.read = planned(self.tables, **self.options)
        check_strict(found, self.strict)
        return found

    def results_current(self) -> bool:
        """The results files on disk are the ones this (cached) plan makes."""
        return self.hit is not None and plan_cache.outputs_current(self.hit)

    def skipped_results(self) -> list[RunResult] | None:
        """A cached no-op whose results files are current: every instance's skipped
        result from the cache, without the plan's decisions; else None."""
        if self.hit is None or not self.results_current():
            return None
        return self.hit.skipped_results()

    def remember(self, the_plan: Plan) -> None:
        """Cache a plan where nothing ran, with the results files as they are now."""
        if self.key is None or the_plan.to_run or self.results_current():
            return
        outputs = [str(the_plan.runs_dir / name)
                   for name in (RESULTS_CSV, REPORT_HTML, RESULTS_XLSX)]
        read = self.hit.read() if self.hit is not None else self.read
        plan_cache.save(self.key, the_plan, read, outputs)
