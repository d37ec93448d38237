"""Execute one instance and leave bookkeeping the next plan can trust.

Order matters for ``kill -9`` at any moment: the started marker goes first (and
removes the previous record), the flow runs, its files are closed, and only then is
the finished-record written, atomically. A record therefore never describes a run
that did not finish.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from ductaflow import environment
from ductaflow.errors import DuctaflowError, FlowError, UsageError
from ductaflow.model import Action, ExecOptions, Instance, RunResult, Status
from ductaflow.planning.reasons import only_upstream_ran, unchanged_reads
from ductaflow.run_folder import fingerprints, provenance, recorded, records
from ductaflow.run_folder.files import FLOWS_MANIFEST, HISTORY, RECORD, STARTED, output_path
from ductaflow.run_folder.lights import scan_output, worst


def execute_instance(instance: Instance, reason: str, options: ExecOptions) -> RunResult:
    """Run one instance in this process (a fresh worker) and record how it ended.

    An instance that runs only because its upstream ran is first compared with what
    it read last time: when that is unchanged, it is skipped (early cutoff).
    """
    run_dir = instance_dir(options.runs_dir, instance)
    cut = _early_cutoff(instance, reason, run_dir, options)
    if cut is not None:
        return cut
    run_dir.mkdir(parents=True, exist_ok=True)
    upstream = records.upstream_run_ids(options.runs_dir, instance.depends_on)
    inputs = fingerprints.input_fingerprints(options.project_root, instance.inputs)
    reads = fingerprints.reference_fingerprints(options.runs_dir, _reads(instance))
    produced_by = options.provenance or provenance.collect(options.project_root)
    started_at, started = records.utc_now(), time.monotonic()
    code = fingerprints.code_fingerprint(options.project_root, [instance.flow])
    _bookkeeping(run_dir / STARTED, records.write_started, run_dir,
                 {"stage": instance.stage, "instance": instance.name, "flow": instance.flow,
                  "reason": reason})
    error, where = _run_flow(instance, run_dir, options, code)
    duration = time.monotonic() - started
    flows = records.read_flows_manifest(run_dir)
    status = Status.ERROR if error else _status_of(run_dir, instance, flows)
    record = records.new_record(
        stage=instance.stage, instance=instance.name, flow=instance.flow,
        config=instance.config, code=_with_flows(code, flows, options.project_root),
        inputs=inputs, upstream=upstream, status=status.value, started_at=started_at,
        ended_at=records.utc_now(), duration_s=duration, flows=flows, reason=reason,
        provenance=produced_by, error=error, upstream_files=reads, mode=options.mode,
        html=options.export_html and options.mode == "notebook", error_at=where)
    _bookkeeping(run_dir / RECORD, records.write_record, run_dir, record)
    _bookkeeping(run_dir / HISTORY, records.add_history, run_dir, _history_entry(
        record, recorded.instance_values(run_dir, instance.flow_stem)))
    result = RunResult.of(instance, Action.FAILED if error else Action.RAN, status, reason,
                          duration, error, started_at, record["ended_at"])
    return dataclasses.replace(result, error_at=where) if where else result


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
    code = fingerprints.code_fingerprint(options.project_root, dict.fromkeys(
        [instance.flow, *(f["flow"] for f in flows), *previous["code"]]))
    record = {**previous, **records.new_record(
        stage=instance.stage, instance=instance.name, flow=instance.flow,
        config=instance.config, code=code,
        inputs=fingerprints.input_fingerprints(options.project_root, instance.inputs),
        upstream=records.upstream_run_ids(options.runs_dir, instance.depends_on),
        status=previous["status"], started_at=previous["started_at"],
        ended_at=previous["ended_at"], duration_s=previous["duration_s"],
        run_id=previous["run_id"]), "accepted": reason,
        "upstream_files": fingerprints.reference_fingerprints(options.runs_dir,
                                                              _reads(instance))}
    records.write_record(run_dir, record)
    return RunResult.of(instance, Action.SKIPPED, Status(previous["status"]),
                        f"accepted: {reason}", float(previous["duration_s"]),
                        started_at=previous["started_at"], ended_at=previous["ended_at"])


def _reads(instance: Instance) -> list[str]:
    return [p for paths in instance.upstream_reads.values() for p in paths]


def _with_flows(code: dict[str, str], flows: list[dict], root: Path) -> dict[str, str]:
    """The instance's code and, for a build, each flow it ran with the modules those
    imported (as each was when it started; an older manifest line: as it is now)."""
    for entry in flows:
        ran = entry.get("code")
        if isinstance(ran, dict):
            code.update({k: v for k, v in ran.items() if isinstance(v, str)})
        elif isinstance(entry.get("flow"), str):
            code.update(fingerprints.code_fingerprint(root, [entry["flow"]]))
    return code


def _early_cutoff(instance: Instance, reason: str, run_dir: Path,
                  options: ExecOptions) -> RunResult | None:
    """Skip an instance that would run only because its upstream ran, when what it
    reads of the upstream is byte for byte what it read last time."""
    if not only_upstream_ran(reason):
        return None
    record = cut_off(instance, options.runs_dir)
    if record is None:
        return None
    return RunResult.of(instance, Action.SKIPPED, Status(record["status"]),
                        unchanged_reads(record["ran"]), float(record["duration_s"]),
                        started_at=record["started_at"], ended_at=record["ended_at"])


def cut_off(instance: Instance, runs_dir: Path) -> dict[str, Any] | None:
    """When what the instance reads of its upstream is what it read last time, make
    its record name the upstream's new runs (so the next plan finds it plainly up to
    date) and return that record, with ``ran``: the upstream that ran since. None when
    something it reads changed, or its last run failed."""
    run_dir = instance_dir(runs_dir, instance)
    record = records.read_record(run_dir)
    saved = None if record is None else record.get("upstream_files")
    if record is None or record["status"] == Status.ERROR.value or not isinstance(saved, dict):
        return None
    reads = _reads(instance)
    if set(reads) != set(saved) or not all(
            fingerprints.same_as_read(f"{runs_dir}/{p}", saved[p]) for p in reads):
        return None
    upstream = records.upstream_run_ids(runs_dir, instance.depends_on)
    ran = [key for key in instance.depends_on if record["upstream"].get(key) != upstream.get(key)]
    if ran:
        _bookkeeping(run_dir / RECORD, records.write_record, run_dir, {
            **record, "upstream": upstream,
            "upstream_files": fingerprints.reference_fingerprints(runs_dir, reads)})
    return {**record, "ran": ran}


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


def _run_flow(instance: Instance, run_dir: Path, options: ExecOptions,
              code: dict[str, str]) -> tuple[str, str]:
    """Run the flow; return ("", "") on success, or the one-line error summary and the
    flow's line that failed (``flows/model.py:42``, when known). ``code`` receives the
    project modules it imported."""
    flow = options.project_root / instance.flow
    os.environ[environment.PROJECT_ROOT] = str(options.project_root)
    os.environ[environment.RUNS_DIR] = str(options.runs_dir)
    os.environ[environment.FLOWS_MANIFEST] = str(run_dir / FLOWS_MANIFEST)
    if options.kernel_server:
        os.environ[environment.KERNEL_SERVER] = options.kernel_server
    try:
        if options.mode == "script":
            from ductaflow.execution.script import run_script

            run_script(flow, instance.config, run_dir, options.project_root, options.timeout,
                       code=code)
        else:
            from ductaflow.execution.notebook import run_notebook

            run_notebook(flow, instance.config, run_dir, options.project_root,
                         options.timeout, export_html=options.export_html,
                         code=code)
    except FlowError as exc:
        return exc.summary, exc.where
    finally:
        os.environ.pop(environment.FLOWS_MANIFEST, None)
    return "", ""


def _status_of(run_dir: Path, instance: Instance, flows: list[dict]) -> Status:
    """Worst of the instance's own output and the output of every flow it ran."""
    files = [output_path(run_dir, instance.flow_stem)]
    files += [run_dir / f["output_file"] for f in flows if isinstance(f.get("output_file"), str)]
    statuses = [scan_output(f) for f in files]
    statuses += [Status.ERROR for f in flows if f.get("status") == "error"]
    return worst(statuses)
