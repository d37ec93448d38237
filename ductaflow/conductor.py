"""``conduct``: plan under the runs-folder lock, run what is stale, write results.

A failed flow is a result, not an exception: it is recorded, its dependents are
blocked, the rest go on. Bad input raises before anything on disk changes. The plan
is made again once the lock is held if another conductor changed records meanwhile
(the runs folder's generation token moved), so two conductors started together never
run the same instance twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ductaflow.errors import DuctaflowError, LockedError, UsageError
from ductaflow.model import Action, Decision, ExecOptions, RunResult, Status
from ductaflow.planning import plan_cache
from ductaflow.planning.planner import Plan, planned, resolve_folders
from ductaflow.run_folder import records
from ductaflow.run_folder.files import GENERATION, LOCK, attempt_path, run_files

#: Least time between two live rewrites of the results and the report.
LIVE_GAP_S = 1.0

#: ``on_event(kind, payload)`` kinds: "waiting" (lock path), "plan" (Plan),
#: "start" (Decision), "finish" (RunResult).
EventHandler = Callable[[str, Any], None]


class ConductInterrupted(DuctaflowError):
    """Ctrl-C: running instances were stopped and left "not done"; results written."""

    exit_code = 130

    def __init__(self, results: list[RunResult]):
        super().__init__("interrupted: running instances stopped, results written")
        self.results = results


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
) -> list[RunResult]:
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
    more times (flaky resources); its record lists every attempt.
    Returns one ``RunResult`` per planned instance, in plan order.
    """
    notify = on_event or (lambda kind, payload: None)
    _refuse_in_worker()
    if mode not in ("notebook", "script"):
        raise UsageError(f"unknown mode {mode!r}: use notebook or script")

    planner = _Planner(tables, project_root, runs_dir, stage, force, select)
    runs = resolve_folders(project_root, runs_dir)[1]
    generation = records.read_generation(runs)
    lock = _RunsLock(runs, wait, notify)
    held = lock.take_if_free()  # only when its file exists: then taking it writes nothing
    try:
        first = planner.plan()  # bad input fails here, before anything is written
        if held:  # planned under the lock: nothing changed meanwhile
            current = first
        else:
            lock.take()
            # Another conductor may have changed records while we planned or waited:
            # plan again, unless none can have (the lock file was new and the token,
            # which a conductor changes before it changes any record, did not move).
            fresh = lock.was_new and records.read_generation(runs) == generation
            current = first if fresh else planner.plan()
        if accept or current.to_run:
            _bump_generation(current.runs_dir)
        results = _go(current, notify, accept=accept, jobs=jobs, mode=mode, timeout=timeout,
                      export_html=export_html, executor=executor, scheduler=scheduler,
                      warm=warm, preload=preload, fail_fast=fail_fast, retries=retries,
                      results_current=planner.results_current())
        if not accept:
            planner.remember(current)
        return results
    finally:
        lock.release()


def _bump_generation(runs_dir: Path) -> None:
    try:
        records.bump_generation(runs_dir)
    except OSError as exc:  # a full disk: say which file, before anything has run
        raise DuctaflowError(f"could not write {runs_dir / GENERATION}: "
                             f"{exc.strerror or exc}") from exc


class _Planner:
    """Plans for one conduct, from the plan cache when the tables are files and
    nothing the last no-op plan read has changed."""

    def __init__(self, tables: Any, project_root: str | os.PathLike, runs_dir: Any,
                 stage: str | None, force: bool, select: Sequence[str] | None):
        self.tables = tables
        self.options = {"project_root": project_root, "runs_dir": runs_dir, "stage": stage,
                        "force": force, "select": select}
        self.key = None if force else plan_cache.cache_key(tables, project_root, runs_dir,
                                                          stage, select)
        self.read: dict[str, Any] = {}
        self.hit: plan_cache.Cached | None = None

    def plan(self) -> Plan:
        self.hit = plan_cache.load(self.key) if self.key is not None else None
        if self.hit is not None:
            self.read = dict(self.hit.files)
            return self.hit.plan
        found, self.read = planned(self.tables, **self.options)
        return found

    def results_current(self) -> bool:
        """The results files on disk are the ones this (cached) plan makes."""
        return self.hit is not None and plan_cache.outputs_current(self.hit)

    def remember(self, the_plan: Plan) -> None:
        """Cache a plan where nothing ran, with the results files as they are now."""
        if self.key is None or the_plan.to_run or self.results_current():
            return
        from ductaflow.reporting.results_files import REPORT_HTML, RESULTS_CSV, RESULTS_XLSX

        outputs = [str(the_plan.runs_dir / name)
                   for name in (RESULTS_CSV, REPORT_HTML, RESULTS_XLSX)]
        plan_cache.save(self.key, the_plan, self.read, outputs)


def _go(current: Plan, notify: EventHandler, *, accept: bool, jobs: int | None, mode: str,
        timeout: float | None, export_html: bool, executor: Any, scheduler: str | None,
        warm: bool, preload: Sequence[str] | None, fail_fast: bool,
        retries: int, results_current: bool = False) -> list[RunResult]:
    """Run the plan, holding the runs folder's lock."""
    notify("plan", current)
    if accept:
        return _accept_all(current, ExecOptions(current.project_root, current.runs_dir),
                           notify)
    jobs = jobs or os.cpu_count() or 1
    if executor == "local" and any(d.run for d in current.decisions):
        from ductaflow.execution.local import start_early

        start_early(mode)
    kernels = _kernel_server(current, mode, warm and executor == "local", preload, jobs)
    options = ExecOptions(current.project_root, current.runs_dir, mode, timeout,
                          export_html, kernels.address if kernels else None,
                          _local_provenance(current, executor))
    to_run = [d for d in current.decisions if d.run]
    # Nothing will run: start no cluster and no processes, import no executor.
    runner = _make_executor(executor, options, jobs, scheduler,
                            sorted({d.instance.flow for d in to_run})) if to_run else _Idle()
    try:
        return _Run(current, options, runner, fail_fast, notify, retries,
                    results_current).go()
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
        if kernels is not None:
            kernels.close()


def _refuse_in_worker() -> None:
    """A script calling ``conduct`` without ``if __name__ == "__main__":`` would run it
    again in every worker process (they import the main module) and hang."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise UsageError("conduct() was called while a worker process imported your script",
                         hint='put the call under  if __name__ == "__main__":')


def _accept_all(the_plan: Plan, options: ExecOptions, notify: EventHandler) -> list[RunResult]:
    """``--accept``: record every stale instance as done, upstream first."""
    from ductaflow.execution.instance import accept_instance
    from ductaflow.reporting.results_files import write_results

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


def _local_provenance(the_plan: Plan, executor: Any) -> dict[str, Any] | None:
    """Collected once here when every instance runs on this machine."""
    if executor != "local" or not the_plan.to_run:
        return None
    from ductaflow.run_folder import provenance

    return provenance.collect(the_plan.project_root)


def _kernel_server(the_plan: Plan, mode: str, warm: bool, preload: Sequence[str] | None,
                   jobs: int) -> Any:
    """A kernel fork server when kernels will start here; none on the no-op path."""
    to_run = sum(1 for d in the_plan.decisions if d.run)
    if mode != "notebook" or not warm or not to_run:
        return None
    from ductaflow.execution.kernels import KernelServer, warm_supported

    if not warm_supported():
        return None
    modules = _module_names(preload if preload is not None
                            else project_preload(the_plan.project_root))
    if _builds_among(the_plan):
        # A build's kernel runs its flows through papermill: import that once, in the
        # server, instead of in every build's fresh kernel (about 1 s each).
        modules = (*modules, "ductaflow.execution.warmup")
    # One spare beyond the running kernels: a kernel handed out is then one forked
    # an instance earlier, already initialized, not one still importing.
    return KernelServer(modules, ready=min(jobs + 1, to_run))


def _builds_among(the_plan: Plan) -> bool:
    """Whether an instance to run is a build: its flow sits in ``builds/`` or calls
    ``run_notebook`` or ``run_step_flow``."""
    flows = {d.instance.flow for d in the_plan.decisions if d.run}
    for flow in flows:
        if flow.startswith("builds/"):
            return True
        try:
            text = (the_plan.project_root / flow).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "run_notebook(" in text or "run_step_flow(" in text:
            return True
    return False


def project_preload(project_root: Path) -> tuple[str, ...]:
    """``[tool.ductaflow] preload = ["pandas"]`` from the project's ``pyproject.toml``."""
    path = project_root / "pyproject.toml"
    if not path.is_file():
        return ()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same reader, installed as tomli
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    modules = data.get("tool", {}).get("ductaflow", {}).get("preload", [])
    return tuple(m for m in modules if isinstance(m, str))


def _module_names(entries: Sequence[str]) -> tuple[str, ...]:
    """``["pandas,numpy", " scipy "]`` -> ``("pandas", "numpy", "scipy")``: a list given
    with commas, in a flag or in pyproject.toml, names each module once."""
    names = (name.strip() for entry in entries for name in entry.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def _make_executor(executor: Any, options: ExecOptions, jobs: int,
                   scheduler: str | None, flows: Sequence[str] = ()) -> Any:
    """The executor named, built for this conduct; Dask only imported when asked for."""
    if executor == "local":
        from ductaflow.execution.local import LocalExecutor

        return LocalExecutor(options, jobs)
    if executor == "dask" or type(executor).__name__ == "Client":
        from ductaflow.execution.dask_executor import DaskExecutor

        client = None if executor == "dask" else executor
        return DaskExecutor(options, jobs, scheduler=scheduler, client=client, flows=flows)
    if isinstance(executor, str):
        raise UsageError(f"unknown executor {executor!r}: use local or dask")
    return executor


class _Idle:
    """The executor of a conduct with nothing to run."""

    capacity = 0

    def running(self) -> list[str]:
        return []

    def stop(self) -> list[str]:
        return []


class _RunsLock:
    """An OS-level lock on the runs folder: released by the OS if we die, never stale."""

    def __init__(self, runs_dir: Path, wait: bool, notify: EventHandler):
        from filelock import FileLock

        self.runs_dir = runs_dir
        self.path = runs_dir / LOCK
        self.lock = FileLock(str(self.path))
        self.wait = wait
        self.notify = notify
        self.was_new = False
        self.held = False

    def take_if_free(self) -> bool:
        """Take the lock if its file exists and no one holds it; never creates anything."""
        from filelock import Timeout

        self.was_new = not self.path.exists()
        if self.was_new:
            return False
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            return False
        self.held = True
        return True

    def take(self) -> None:
        """Take the lock, waiting for another conduct unless told not to."""
        from filelock import Timeout

        self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            if not self.wait:
                raise LockedError(f"another conduct is running on {self.runs_dir}",
                                  hint="wait for it, or run without --no-wait") from None
            self.notify("waiting", self.path)
            self.lock.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.lock.release()
            self.held = False


class _Run:
    """The scheduling loop of one conduct: start what is ready, collect what finished."""

    def __init__(self, the_plan: Plan, options: ExecOptions, executor: Any, fail_fast: bool,
                 notify: EventHandler, retries: int = 0, results_current: bool = False):
        self.plan = the_plan
        self.options = options
        self.executor = executor
        self.fail_fast = fail_fast
        self.notify = notify
        self.order = [d.instance.key for d in the_plan.decisions]
        self.decisions = {d.instance.key: d for d in the_plan.decisions}
        self.results: dict[str, RunResult] = {}
        self.pending = [d for d in the_plan.decisions if d.run]
        self.failed = False
        self.started_at = time.time()
        self.running_since: dict[str, str] = {}
        self.retries = retries
        self.attempts: dict[str, list[dict[str, Any]]] = {}
        self.dirty = False
        self.next_write = 0.0
        self.results_current = results_current  # a no-op whose results are on disk
        self.importing = False  # openpyxl, in the background once an instance ended

    def go(self) -> list[RunResult]:
        for decision in self.plan.decisions:
            if not decision.run:
                self.results[decision.instance.key] = skipped_result(decision, self.plan)
        try:
            self.loop()
        except KeyboardInterrupt:
            self.interrupt()
        if not self.results_current:
            self.write_outputs(running=False)
        return self.ordered()

    def loop(self) -> None:
        while self.pending or self.executor.running():
            self.block_unreachable()
            self.start_ready()
            self.write_due()  # after starting what can start: no instance waits for it
            if not self.executor.running():
                continue
            for result in self.executor.wait(0.5):
                self.finish(result)

    def start_ready(self) -> None:
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
                self.executor.submit(decision.instance, decision.reason)
                self.dirty = True

    def upstream_done(self, decision: Decision) -> bool:
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
        self.pending.remove(decision)
        instance = decision.instance
        result = RunResult(stage=instance.stage, instance=instance.name, action=Action.BLOCKED,
                           status=None, reason=reason, duration_s=0.0,
                           run_dir=instance.run_dir, flow=instance.flow)
        self.finish(result)

    def finish(self, result: RunResult) -> None:
        if result.action in (Action.RAN, Action.FAILED) and self.note_attempt(result):
            return
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

    def interrupt(self) -> None:
        """First Ctrl-C: stop running instances, start nothing new, keep what finished."""
        for key in self.executor.stop():
            decision = self.decisions[key]
            instance = decision.instance
            self.results[key] = RunResult(
                stage=instance.stage, instance=instance.name, action=Action.FAILED,
                status=Status.ERROR, reason=decision.reason, duration_s=0.0,
                run_dir=instance.run_dir, flow=instance.flow, error="Interrupted")
        for decision in list(self.pending):
            self.pending.remove(decision)
            self.results[decision.instance.key] = RunResult(
                stage=decision.instance.stage, instance=decision.instance.name,
                action=Action.BLOCKED, status=None, reason="interrupted before it started",
                duration_s=0.0, run_dir=decision.instance.run_dir, flow=decision.instance.flow)
        self.write_outputs(running=False)
        raise ConductInterrupted(self.ordered())

    def ordered(self) -> list[RunResult]:
        return [self.results[key] for key in self.order if key in self.results]

    def write_outputs(self, running: bool) -> None:
        """Rewrite the live results now (the end, Ctrl-C)."""
        self._write(running)

    def write_due(self) -> None:
        """Rewrite the live results when something changed and the pace allows.

        Each write reads and renders every row, so rewriting after every instance of
        a big table would cost more than the instances: a write waits until
        ``LIVE_GAP_S`` or four times the last write's duration has passed.
        """
        if self.dirty and time.monotonic() >= self.next_write:
            self._write(bool(self.pending or self.executor.running()))

    def _write(self, running: bool) -> None:
        from ductaflow.reporting.results_files import write_results

        began = time.monotonic()
        write_results(self.ordered(), self.plan, running=running,
                      started_at=self.started_at, running_now=dict(self.running_since))
        ended = time.monotonic()
        self.dirty = False
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
    status = last.status if last is not None else None
    return RunResult(stage=instance.stage, instance=instance.name, action=Action.SKIPPED,
                     status=Status(status) if status in records.STATUSES else None,
                     reason="up to date", duration_s=last.duration_s if last else 0.0,
                     run_dir=instance.run_dir, flow=instance.flow,
                     started_at=last.started_at if last else "",
                     ended_at=last.ended_at if last else "")
