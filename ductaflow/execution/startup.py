"""What a conduct starts before its first instance, and stops after its last.

Runs in the conductor. The executor named (local worker processes, a Dask cluster,
or one the caller made), the fork server local workers come from, and the kernel
server that keeps warm kernels ready. Nothing starts, and nothing heavy is imported,
when nothing is to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ductaflow.errors import UsageError
from ductaflow.execution.contract import Executor, Idle
from ductaflow.model import ConductSettings, ExecOptions
from ductaflow.planning.planner import Plan


@contextlib.contextmanager
def executor_for(the_plan: Plan, settings: ConductSettings) -> Iterator[Executor]:
    """The executor that runs ``the_plan``, with what it needs started; all closed after."""
    to_run = the_plan.to_run
    if not to_run:
        yield Idle()  # start no cluster and no processes, import no executor
        return
    if settings.local:
        from ductaflow.execution.local import start_early

        start_early(settings.mode)
    kernels = _kernel_server(the_plan, settings)
    options = ExecOptions(the_plan.project_root, the_plan.runs_dir, settings.mode,
                          settings.timeout, settings.export_html,
                          kernels.address if kernels else None,
                          _local_provenance(the_plan, settings))
    try:
        executor = _make_executor(settings, options, sorted({d.instance.flow for d in to_run}))
        try:
            yield executor
        finally:
            executor.close()
    finally:
        if kernels is not None:
            kernels.close()


def _make_executor(settings: ConductSettings, options: ExecOptions,
                   flows: Sequence[str] = ()) -> Executor:
    """The executor named, built for this conduct; Dask only imported when asked for."""
    executor, jobs = settings.executor, settings.jobs
    if settings.local:
        from ductaflow.execution.local import LocalExecutor

        return LocalExecutor(options, jobs)
    if executor == "dask" or type(executor).__name__ == "Client":
        from ductaflow.execution.dask_executor import DaskExecutor

        client = None if executor == "dask" else executor
        return DaskExecutor(options, jobs, scheduler=settings.scheduler, client=client,
                            flows=flows)
    return executor


def check_executor(executor: Any) -> None:
    """Refuse, before anything runs, an executor ``conduct`` cannot use."""
    if isinstance(executor, str):
        if executor not in ("local", "dask"):
            raise UsageError(f"unknown executor {executor!r}: use local or dask")
    elif type(executor).__name__ != "Client" and not isinstance(executor, Executor):
        missing = [name for name in ("capacity", "submit", "wait", "running", "stop", "close")
                   if not hasattr(executor, name)]
        raise UsageError(f"executor {type(executor).__name__} lacks {', '.join(missing)}",
                         hint="an executor keeps the contract in ductaflow.execution.contract")


def _local_provenance(the_plan: Plan, settings: ConductSettings) -> dict[str, Any] | None:
    """Collected once here when every instance runs on this machine."""
    if not settings.local:
        return None
    from ductaflow.run_folder import provenance

    return provenance.collect(the_plan.project_root)


def _kernel_server(the_plan: Plan, settings: ConductSettings) -> Any:
    """A kernel fork server when kernels will start here; none on the no-op path."""
    to_run = len(the_plan.to_run)
    if settings.mode != "notebook" or not settings.warm or not settings.local or not to_run:
        return None
    from ductaflow.execution.kernels import KernelServer, warm_supported

    if not warm_supported():
        return None
    preload = settings.preload
    modules = _module_names(preload if preload is not None
                            else project_preload(the_plan.project_root))
    if _builds_among(the_plan):
        # A build's kernel runs its flows through papermill: import that once, in the
        # server, instead of in every build's fresh kernel (about 1 s each).
        modules = (*modules, "ductaflow.execution.warmup")
    # One spare beyond the running kernels: a kernel handed out is then one forked
    # an instance earlier, already initialized, not one still importing.
    return KernelServer(modules, ready=min(settings.jobs + 1, to_run))


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
    from ductaflow.planning.project import tool_settings

    modules = tool_settings(project_root).get("preload", [])
    return tuple(m for m in modules if isinstance(m, str)) if isinstance(modules, list) else ()


def _module_names(entries: Sequence[str]) -> tuple[str, ...]:
    """``["pandas,numpy", " scipy "]`` -> ``("pandas", "numpy", "scipy")``: a list given
    with commas, in a flag or in pyproject.toml, names each module once."""
    names = (name.strip() for entry in entries for name in entry.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


