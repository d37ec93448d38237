"""What a conduct starts before its first instance, and stops after its last.

Runs in the conductor. The executor named (local worker processes, a Dask cluster,
or one the caller made), the fork server local workers come from, and the kernel
server that keeps warm kernels ready. Nothing starts, and nothing heavy is imported,
when nothing is to run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
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
    modules = _module_names(preload_for(the_plan, settings.preload))
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


def preload_for(the_plan: Plan, given: Sequence[str] | None) -> tuple[str, ...]:
    """What warm kernels import in advance: the modules named (``--preload``, else
    ``[tool.ductaflow] preload`` in ``pyproject.toml``, an empty list turning it off),
    else the packages the flows to run import (``flow_imports``)."""
    if given is not None:
        return tuple(given)
    named = project_preload(the_plan.project_root)
    if named is not None:
        return named
    return flow_imports(the_plan.project_root, sorted({d.instance.flow for d in the_plan.to_run}))


def project_preload(project_root: Path) -> tuple[str, ...] | None:
    """``[tool.ductaflow] preload = ["pandas"]`` from the project's ``pyproject.toml``;
    None when it names none."""
    from ductaflow.planning.project import tool_settings

    modules = tool_settings(project_root).get("preload")
    if not isinstance(modules, list):
        return None
    return tuple(m for m in modules if isinstance(m, str))


#: Never imported ahead of a fork, even when flows import them: they start threads or
#: take devices at import, which a forked kernel would inherit broken.
FORK_UNSAFE = frozenset({"torch", "tensorflow", "keras", "jax", "jaxlib", "ray", "polars",
                         "cupy", "pyspark", "distributed", "numba", "mpi4py", "pycuda"})


def flow_imports(project_root: Path, flows: Iterable[str]) -> tuple[str, ...]:
    """The installed packages the flows import, by top-level name: warmed by default.

    Read from the flows' source (every ``import`` in it; for a build, also in the
    flows whose ``.py`` paths its source names). The standard library is imported by
    every kernel anyway; the project's own modules are code that changes and runs on
    import, never warmed; ``FORK_UNSAFE`` packages are left out.
    """
    import ast

    names: dict[str, None] = {}
    queue, seen = list(flows), set()
    while queue:
        flow = queue.pop()
        if flow in seen:
            continue
        seen.add(flow)
        try:
            tree = ast.parse((project_root / flow).read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(dict.fromkeys(a.name.partition(".")[0] for a in node.names))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names[node.module.partition(".")[0]] = None
            else:
                queue += _flows_named(node, project_root)
    return tuple(name for name in names if _installed(name, project_root))


def _flows_named(node: Any, project_root: Path) -> list[str]:
    """The flow files a build's source names: ``"flows/prep.py"``, or every file a
    pattern can stand for (``f"flows/{step}.py"`` -> ``flows/*.py``)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        pattern = node.value
    elif isinstance(node, ast.JoinedStr):
        pattern = "".join(part.value if isinstance(part, ast.Constant) else "*"
                          for part in node.values)
    else:
        return []
    if not pattern.endswith(".py") or pattern.startswith(("/", "*")) or ".." in pattern:
        return []
    if "*" not in pattern:
        return [pattern] if (project_root / pattern).is_file() else []
    return [path.relative_to(project_root).as_posix()
            for path in sorted(project_root.glob(pattern))[:100] if path.is_file()]


def _installed(name: str, project_root: Path) -> bool:
    """A package installed for this Python: not the standard library, not ductaflow,
    not one of the project's own modules (a venv inside the project is installed)."""
    import importlib.util

    if name in sys.stdlib_module_names or name in FORK_UNSAFE or name == "ductaflow":
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None) or ""
    if not os.path.isabs(origin):  # built-in, frozen, a namespace package
        return False
    parts = Path(origin).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return not os.path.realpath(origin).startswith(str(project_root.resolve()) + os.sep)


def _module_names(entries: Sequence[str]) -> tuple[str, ...]:
    """``["pandas,numpy", " scipy "]`` -> ``("pandas", "numpy", "scipy")``: a list given
    with commas, in a flag or in pyproject.toml, names each module once."""
    names = (name.strip() for entry in entries for name in entry.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


