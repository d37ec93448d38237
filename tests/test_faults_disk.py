"""Disk and bookkeeping: a full disk, corrupt bookkeeping files, half-written outputs,
readers racing the writers, symlinked instance folders.

Disk full is simulated with ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so a write past the limit
fails with EFBIG as a full disk fails with ENOSPC): on the whole conductor for the
report, and on one worker only (a flow lowers its parent's limit with ``prlimit``) for
an instance's record.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import resource
import shutil
import signal
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from ductaflow.planning.planner import plan
from ductaflow.reporting.inventory import rebuild_report, status_rows
from ductaflow.reporting.results_files import COLUMNS
from ductaflow.run_folder import records
from ductaflow.run_folder.files import (
    FLOWS_MANIFEST,
    RECORD,
    REPORT_HTML,
    RESULTS_CSV,
    RESULTS_XLSX,
    STARTED,
)

from .conftest import run_cli
from .test_faults_common import (
    conduct_cli,
    environment,
    linux_only,
    make_project,
    one_line_error,
    snapshot,
    start_conduct,
    started,
    tables,
    tagged_pids,
    wait_for,
)

TWO = "instance,tag,act,bytes\nok,ok,ok,\nlim,lim,ok,\n"


def ignore_sigxfsz(limit: int | None = None):
    def prepare() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return prepare


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def decisions(root: Path) -> dict[str, str]:
    found = plan([str(root / t) for t in tables(root)], project_root=root)
    return {d.instance.key: d.reason if d.run else "skip" for d in found.decisions}


# --- disk full ------------------------------------------------------------------------------


@pytest.fixture
def after_disk_full_in_a_worker(tmp_path):
    """A project whose instance ``lim`` ran fine, then reran and hit a full disk while
    its worker wrote the record (the flow lowered its worker's file size limit)."""
    root = make_project(tmp_path, {"act": TWO})
    first = conduct_cli(root, *tables(root), "--mode", "script")
    assert first.returncode == 0, first.stderr
    (root / "scenarios/act.csv").write_text(TWO.replace("lim,lim,ok,", "lim,lim,limit_parent,300"),
                                            encoding="utf-8")
    full = conduct_cli(root, *tables(root), "--mode", "script", preexec_fn=ignore_sigxfsz())
    return root, full


@linux_only
def test_disk_full_while_writing_a_record_leaves_the_instance_not_done(
        after_disk_full_in_a_worker):
    root, full = after_disk_full_in_a_worker
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    assert "File too large" in full.stdout
    folder = root / "runs/act/lim"
    assert records.read_record(folder) is None and not records.has_record_file(folder)
    assert records.is_started(folder)
    assert leftovers(root / "runs") == []
    assert records.read_record(root / "runs/act/ok") is not None  # the others intact
    with open(root / "runs" / RESULTS_CSV, encoding="utf-8") as handle:
        rows = {r["instance"]: r for r in csv.DictReader(handle)}
    assert rows["lim"]["action"] == "failed" and "File too large" in rows["lim"]["error"]
    assert decisions(root) == {"act/ok": "skip", "act/lim": "last run incomplete"}


@linux_only
def test_disk_full_while_writing_a_record_names_the_file(after_disk_full_in_a_worker):
    root, full = after_disk_full_in_a_worker
    assert "record.json" in full.stdout, full.stdout


@pytest.fixture
def after_disk_full_for_the_report(tmp_path):
    """A finished conduct, then one more whose conductor may write no file over 4 KB:
    the CSV fits, the report (~12 KB) and the workbook do not."""
    root = make_project(tmp_path, {"act": TWO})
    first = conduct_cli(root, *tables(root), "--mode", "script")
    assert first.returncode == 0, first.stderr
    runs = root / "runs"
    before = {name: (runs / name).read_bytes() for name in (REPORT_HTML, RESULTS_XLSX)}
    assert len(before[REPORT_HTML]) > 4096
    (root / "scenarios/act.csv").write_text(TWO.replace("ok,ok,ok,", "ok,ok,warn,"),
                                            encoding="utf-8")
    full = conduct_cli(root, *tables(root), "--mode", "script",
                       preexec_fn=ignore_sigxfsz(4096))
    return root, full, before


@linux_only
def test_disk_full_while_writing_the_report_keeps_the_previous_one_intact(
        after_disk_full_for_the_report):
    root, full, before = after_disk_full_for_the_report
    runs = root / "runs"
    assert f"could not write {runs / REPORT_HTML}: [Errno 27] File too large" in full.stderr
    for name, data in before.items():
        assert (runs / name).read_bytes() == data, f"{name} changed or is half written"
    assert leftovers(runs) == []
    assert records.read_record(runs / "act/ok")["status"] == "warning"  # the run itself counted
    assert decisions(root) == {"act/ok": "skip", "act/lim": "skip"}
    again = conduct_cli(root, *tables(root), "--mode", "script")
    assert again.returncode == 0 and (runs / REPORT_HTML).read_bytes() != before[REPORT_HTML]


@linux_only
def test_disk_full_while_writing_the_report_prints_no_traceback(after_disk_full_for_the_report):
    _, full, _ = after_disk_full_for_the_report
    assert "Traceback" not in full.stderr, full.stderr


# --- corrupt bookkeeping --------------------------------------------------------------------

GARBAGE = [
    b"", b"\x00" * 64, b"\xff\xfe{\x00}\x00", "{\"version\": 1}".encode("utf-16"), b"null",
    b"[]", b'"text"', b"1e999999", b"NaN", b"[" * 100_000, b'{"a":' * 50_000,
    b"\xef\xbb\xbf{}", b"{}" * 10, b'{"version": true}', bytes(range(256)) * 4,
]


def mutations(record: dict) -> list[bytes]:
    """The record with one field at a time made the wrong type, removed or odd."""
    found = []
    for key in records.REQUIRED_KEYS:
        for value in (None, "x", 1, 1.5, [], {}, True):
            found.append(json.dumps({**record, key: value}).encode())
        found.append(json.dumps({k: v for k, v in record.items() if k != key}).encode())
    found.append(json.dumps({**record, "version": 2}).encode())
    found.append(json.dumps({**record, "status": "green"}).encode())
    return found


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    """A project of two stages that ran once, in script mode."""
    root = make_project(tmp_path_factory.mktemp("ran") / "project", {
        "act": "instance,tag\nA,A\nB,B\n",
        "next": "instance,tag,input\nA,next/A,runs/act/A/done.txt\n",
    }, {"act": "fault_act", "next": "fault_act"})
    done = conduct_cli(root, *tables(root), "--mode", "script")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def ran(ran_once, tmp_path):
    """A copy of ``ran_once`` (a project moves without rerunning anything)."""
    root = shutil.copytree(ran_once, tmp_path / "project", symlinks=True)
    (root / "ran.log").unlink()
    assert decisions(root) == {"act/A": "skip", "act/B": "skip", "next/A": "skip"}
    return root


def test_a_record_truncated_at_every_length_or_garbled_is_not_done(ran):
    path = ran / "runs/act/A" / RECORD
    whole = path.read_bytes()
    valid = len(whole.rstrip())
    variants = [whole[:n] for n in range(valid)] + GARBAGE
    variants += [random.Random(n).randbytes(n) for n in (1, 10, 100, 1000, 10_000)]
    not_done = {"act/A": "last run incomplete", "act/B": "skip",
                "next/A": "upstream ran: act/A"}
    for data in variants:
        path.write_bytes(data)
        assert decisions(ran) == not_done, data[:80]
    for data in mutations(json.loads(whole)):  # well-formed JSON, fields of any type
        path.write_bytes(data)
        found = decisions(ran)
        if records.parse_record(data) is None:
            assert found == not_done, data[:80]
    path.write_bytes(whole)
    assert decisions(ran)["act/A"] == "skip"


def test_a_started_marker_at_every_length_or_garbled_is_not_done(ran):
    folder = ran / "runs/act/B"
    whole = json.dumps({"version": 1, "started_at": records.utc_now(), "pid": 1,
                        "stage": "act", "instance": "B"}, indent=1).encode()
    (folder / RECORD).unlink()
    for data in [whole[:n] for n in range(len(whole) + 1)] + GARBAGE:
        (folder / STARTED).write_bytes(data)
        assert decisions(ran)["act/B"] == "last run incomplete", data[:80]


def test_a_build_manifest_at_every_length_or_garbled_breaks_nothing(ran):
    """``flows.jsonl`` is read by the report and status; the record is what counts."""
    folder = ran / "runs/act/A"
    lines = [json.dumps({"flow": "flows/act.py", "execution_dir": f"runs/step{i}",
                         "status": "success", "output_file": "../../x.txt"})
             for i in range(3)]
    whole = ("\n".join(lines) + "\n").encode()
    runs = ran / "runs"
    for data in [whole[:n] for n in range(0, len(whole) + 1, 7)] + GARBAGE:
        (folder / FLOWS_MANIFEST).write_bytes(data)
        assert decisions(ran)["act/A"] == "skip"
        assert {r.key: r.status for r in status_rows(runs)}["act/A"] == "success"
        rebuild_report(runs)


def test_the_results_csv_at_every_length_or_garbled_breaks_nothing(ran):
    runs = ran / "runs"
    whole = (runs / RESULTS_CSV).read_bytes()
    extra = [b'"' * 200_000, b"stage,instance\n" + b"x," * 200_000, b"\r\r\n\n,,,\x00"]
    for data in [whole[:n] for n in range(0, len(whole) + 1, 5)] + GARBAGE + extra:
        (runs / RESULTS_CSV).write_bytes(data)
        assert {r.key for r in status_rows(runs)} == {"act/A", "act/B", "next/A"}
        rebuild_report(runs)


def test_a_real_conduct_over_every_kind_of_corrupt_bookkeeping(ran):
    """One conduct in script mode over all corruptions at once: it neither crashes nor
    trusts a damaged record; `status` and `report` read the same folder."""
    runs = ran / "runs"
    record = (runs / "act/A" / RECORD).read_bytes()
    (runs / "act/A" / RECORD).write_bytes(record[: len(record) // 2])
    (runs / "act/B" / STARTED).write_bytes(b"\x00garbage")  # beside a valid record
    (runs / "act/B" / FLOWS_MANIFEST).write_bytes(b'{"flow": \n\xff\n[]\n')
    (runs / "next/A" / RECORD).write_bytes(b"\xff" * 1000)
    (runs / RESULTS_CSV).write_bytes(b'"\x00' * 1000)
    (runs / ".conductor.lock").write_bytes(os.urandom(4096))
    (runs / REPORT_HTML).write_bytes(b"<html")
    done = conduct_cli(ran, *tables(ran), "--mode", "script", "--no-wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert started(ran) == ["A", "next/A"]  # the damaged records; B's record is whole
    runs_after = {k: v != "skip" for k, v in decisions(ran).items()}
    assert runs_after == {"act/A": False, "act/B": False, "next/A": False}
    for command in (("status", "runs"), ("report", "runs")):
        shown = run_cli(*command, cwd=ran)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr


# --- half-written outputs -------------------------------------------------------------------


@linux_only
def test_a_half_written_output_is_never_accepted_whatever_the_user_runs_next(tmp_path):
    root = make_project(tmp_path, {
        "prep": "instance,tag,act,sleep\nA,prep/A,ok,\nB,prep/B,ok,60\n",
        "model": "instance,tag,input\nB,model/B,runs/prep/B/done.txt\n",
    }, {"prep": "fault_act", "model": "fault_act"})
    tag = os.urandom(8).hex()
    proc = start_conduct(root, *tables(root), "--mode", "script", env=environment(root, tag))
    folder = root / "runs/prep/B"
    wait_for(lambda: (folder / "half.txt").exists() and records.read_record(root / "runs/prep/A"),
             60, "prep/B to be half way")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not tagged_pids(tag), 5, "the flows to exit")

    def still_not_done(after: str) -> None:
        assert records.read_record(folder) is None, after
        assert decisions(root)["prep/B"] == "last run incomplete", after

    dry = conduct_cli(root, *tables(root), "--mode", "script", "--dry-run")
    assert "prep/B" in dry.stdout and "last run incomplete" in dry.stdout
    still_not_done("--dry-run")
    other = conduct_cli(root, *tables(root), "--mode", "script", "--select", "prep/A")
    assert other.returncode == 0, other.stderr
    still_not_done("--select prep/A")
    accept = conduct_cli(root, *tables(root), "--accept")
    assert "prep/B" in accept.stdout
    still_not_done("--accept")
    status = run_cli("status", "runs", cwd=root)
    assert [line for line in status.stdout.splitlines() if "prep/B" in line
            and "success" in line] == []
    still_not_done("status")
    run_cli("report", "runs", cwd=root)
    still_not_done("report")
    by_hand = run_cli("run", "flows/prep.py", "--mode", "script", "--output-dir",
                      "runs/prep/B", "--config", "runs/prep/B/prep_config.json", cwd=root,
                      env={"DF_FAST": "1"})
    assert by_hand.returncode == 0, by_hand.stderr
    still_not_done("ductaflow run into its folder")
    last = conduct_cli(root, *tables(root), "--mode", "script", "--select", "model/B",
                       env=environment(root, tag, DF_FAST="1"))
    assert last.returncode == 0, last.stdout + last.stderr
    assert records.read_record(folder)["status"] == "success"
    assert decisions(root) == {"prep/A": "skip", "prep/B": "skip", "model/B": "skip"}


# --- atomic results -------------------------------------------------------------------------


def test_report_results_and_workbook_are_never_seen_half_written(tmp_path):
    """A reader polls the live files through a whole conduct of many short instances.

    They sleep, so the conduct lasts long enough for live rewrites (at most one a
    second, and one going on when the final write is due gives up) on a loaded machine.
    """
    rows = "".join(f"i{n},i{n},0.3\n" for n in range(16))
    root = make_project(tmp_path, {"act": "instance,tag,sleep\n" + rows})
    runs = root / "runs"
    seen: dict[str, set[bytes]] = {REPORT_HTML: set(), RESULTS_CSV: set(), RESULTS_XLSX: set()}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for name, versions in seen.items():
                try:
                    versions.add((runs / name).read_bytes())
                except FileNotFoundError:
                    pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        done = conduct_cli(root, *tables(root), "--mode", "script", "--jobs", "2")
    finally:
        stop.set()
        reader.join()
    assert done.returncode == 0, done.stderr
    assert len(seen[REPORT_HTML]) >= 3 and len(seen[RESULTS_CSV]) >= 3
    for html in seen[REPORT_HTML]:
        text = html.decode("utf-8")
        assert text.lstrip().lower().startswith("<!doctype html") and \
            text.rstrip().endswith("</html>"), text[-200:]
    for data in seen[RESULTS_CSV]:
        lines = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        assert tuple(lines[0]) == COLUMNS and all(len(line) == len(COLUMNS) for line in lines)
    for data in seen[RESULTS_XLSX]:
        assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert leftovers(runs) == []


@linux_only
def test_results_report_and_records_have_the_permissions_of_any_new_file(ran):
    runs = ran / "runs"
    ordinary = runs / "ordinary.txt"
    ordinary.write_text("x", encoding="utf-8")
    expected = stat.S_IMODE(ordinary.stat().st_mode)
    for path in (runs / REPORT_HTML, runs / RESULTS_CSV, runs / RESULTS_XLSX,
                 runs / "act/A" / RECORD):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name


# --- symlinked instance folders -------------------------------------------------------------


@pytest.mark.parametrize("link", ["act/A", "act"])
def test_an_instance_or_stage_folder_linking_outside_the_runs_folder_is_refused(tmp_path, link):
    root = make_project(tmp_path / "project", {"act": "instance,tag\nA,A\nB,B\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "runs").mkdir()
    if link == "act/A":
        (root / "runs/act").mkdir()
    (root / "runs" / link).symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    done = conduct_cli(root, *tables(root), "--mode", "script")
    assert done.returncode == 2, done.stdout + done.stderr
    message = one_line_error(done.stderr)
    assert "outside the runs folder" in message and str(outside) in message
    assert snapshot(tmp_path) == before and list(outside.iterdir()) == []
    dry = conduct_cli(root, *tables(root), "--mode", "script", "--dry-run")
    assert dry.returncode == 2 and snapshot(tmp_path) == before
    shutil.rmtree(outside)
