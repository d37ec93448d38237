"""Execute one instance and leave bookkeeping the next plan can trust.

Order matters for ``kill -9`` at any moment: the started marker goes first (and
removes the previous record), the flow runs, its files are closed, and only then is
the finished-record written, atomically. A record therefore never describes a run
that did not finish.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ductaflow import environment
from ductaflow.errors import DuctaflowError, FlowError, UsageError
from ductaflow.model import Action, ExecOptions, Instance, RunResult, Status
from ductaflow.run_folder import provenance, recorded, records
from ductaflow.run_folder.files import FLOWS_MANIFEST, HISTORY, RECORD, STARTED, output_path
from ductaflow.run_folder.lights import scan_output, worst


def execute_instance(instance: Instance, reason: str, options: ExecOptions) -> RunResult:
    """Run one instance in this process (a fresh worker) and record how it ended."""
    run_dir = instance_dir(options.runs_dir, instance)
    run_dir.mkdir(parents=True, exist_ok=True)
    upstream = records.upstream_run_ids(options.runs_dir, instance.depends_on)
    inputs = records.input_fingerprints(options.project_root, instance.inputs)
    produced_by = options.provenance or provenance.collect(options.project_root)
    started_at, started = records.utc_now(), time.monotonic()
    _bookkeeping(run_dir / STARTED, records.write_started, run_dir,
                 {"stage": instance.stage, "instance": instance.name, "flow": instance.flow,
                  "reason": reason})
    error = _run_flow(instance, run_dir, options)
    duration = time.monotonic() - started
    flows = records.read_flows_manifest(run_dir)
    status = Status.ERROR if error else _status_of(run_dir, instance, flows)
    record = records.new_record(
        stage=instance.stage, instance=instance.name, flow=instance.flow,
        config=instance.config,
        code=records.code_fingerprint(options.project_root,
                                    [instance.flow, *(f["flow"] for f in flows)]),
        inputs=inputs, upstream=upstream, status=status.value, started_at=started_at,
        ended_at=records.utc_now(), duration_s=duration, flows=flows, reason=reason,
        provenance=produced_by, error=error)
    _bookkeeping(run_dir / RECORD, records.write_record, run_dir, record)
    _bookkeeping(run_dir / HISTORY, records.add_history, run_dir, _history_entry(
        record, recorded.instance_values(run_dir, instance.flow_stem)))
    return RunResult.of(instance, Action.FAILED if error else Action.RAN, status, reason,
                        duration, error, started_at, record["ended_at"])


def accept_instance(instance: Instance, reason: str, options: ExecOptions) -> RunResult:
    """Record the current config, code, inputs and upstream as done, without running.

    Only a finished, green or orange run can be accepted: its outputs exist and came
    from a run that worked. A new, failed or killed instance is left to run.
    """
    run_dir = instance_dir(options.runs_dir, instance)
    previous = records.read_record(run_dir)
    if previous is None or previous["status"] == Status.ERROR.value:
        why = "it never finished" if previous is None else "its last run failed"
        return RunResult.of(instance, Action.BLOCKED,
                            None if previous is None else Status.ERROR, f"not accepted: {why}")
    flows = previous.get("flows") or []
    record = {**previous, **records.new_record(
        stage=instance.stage, instance=instance.name, flow=instance.flow,
        config=instance.config,
        code=records.code_fingerprint(options.project_root,
                                    [instance.flow, *(f["flow"] for f in flows)]),
        inputs=records.input_fingerprints(options.project_root, instance.inputs),
        upstream=records.upstream_run_ids(options.runs_dir, instance.depends_on),
        status=previous["status"], started_at=previous["started_at"],
        ended_at=previous["ended_at"], duration_s=previous["duration_s"],
        run_id=previous["run_id"]), "accepted": reason}
    records.write_record(run_dir, record)
    return RunResult.of(instance, Action.SKIPPED, Status(previous["status"]),
                        f"accepted: {reason}", float(previous["duration_s"]),
                        started_at=previous["started_at"], ended_at=previous["ended_at"])


def _history_entry(record: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """What ``ductaflow diff`` compares a run by: not its output files."""
    kept = ("run_id", "started_at", "ended_at", "status", "duration_s", "config", "code",
            "inputs")
    return {**{key: record[key] for key in kept}, "values": values}


class BookkeepingError(DuctaflowError):
    """ductaflow could not write its own records (disk full, permissions)."""


def _bookkeeping(path: Path, write: Any, *args: Any) -> None:
    try:
        write(*args)
    except OSError as exc:
        raise BookkeepingError(f"could not write {path}: {exc}") from exc


def instance_dir(runs_dir: Path, instance: Instance) -> Path:
    """The instance's folder; refused when a symlink would lead outside the runs folder."""
    path = runs_dir / instance.stage / instance.name
    real_runs = runs_dir.resolve()
    if path.exists() and not path.resolve().is_relative_to(real_runs):
        raise UsageError(f"instance folder {path} leads outside the runs folder {runs_dir}")
    return path


def _run_flow(instance: Instance, run_dir: Path, options: ExecOptions) -> str:
    """Run the flow; return "" on success or the one-line error summary."""
    flow = options.project_root / instance.flow
    os.environ[environment.PROJECT_ROOT] = str(options.project_root)
    os.environ[environment.FLOWS_MANIFEST] = str(run_dir / FLOWS_MANIFEST)
    if options.kernel_server:
        os.environ[environment.KERNEL_SERVER] = options.kernel_server
    try:
        if options.mode == "script":
            from ductaflow.execution.script import run_script

            run_script(flow, instance.config, run_dir, options.project_root, options.timeout)
        else:
            from ductaflow.execution.notebook import run_notebook

            run_notebook(flow, instance.config, run_dir, options.project_root,
                         options.timeout, export_html=options.export_html)
    except FlowError as exc:
        return exc.summary
    finally:
        os.environ.pop(environment.FLOWS_MANIFEST, None)
    return ""


def _status_of(run_dir: Path, instance: Instance, flows: list[dict]) -> Status:
    """Worst of the instance's own output and the output of every flow it ran."""
    files = [output_path(run_dir, instance.flow_stem)]
    files += [run_dir / f["output_file"] for f in flows if isinstance(f.get("output_file"), str)]
    statuses = [scan_output(f) for f in files]
    statuses += [Status.ERROR for f in flows if f.get("status") == "error"]
    return worst(statuses)
