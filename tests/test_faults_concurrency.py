"""Concurrency: conductors racing for one runs folder, lock holders killed, orphans.

Extends test_conduct.py (a second conductor waits, or refuses with --no-wait): twenty
pairs of conductors started at the same instant, a lock holder killed with -9 and the
next run started at once, and no process (nor a child a flow started) outliving a
conductor killed with -9, alone or with its whole process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ductaflow.run_folder import records

from .test_faults_common import (
    conduct_cli,
    environment,
    linux_only,
    make_project,
    ran_log,
    start_conduct,
    started,
    tables,
    tagged_pids,
    wait_for,
)

pytestmark = linux_only

TRIALS = 12
RACE = {"act": "instance,tag\nA,act/A\nB,act/B\n",
        "next": "instance,tag,input\nA,next/A,runs/act/A/done.txt\n"}
#: Imports everything first, then waits for the start file: both start at one instant.
LAUNCHER = """
import os, sys, time
import ductaflow.cli.commands, ductaflow.conductor
import ductaflow.planning.planner, ductaflow.tables.reading
go = sys.argv[1]
open(f"{go}.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.0005)
sys.exit(ductaflow.cli.commands.main(sys.argv[2:]))
"""


@pytest.fixture
def tag():
    value = os.urandom(8).hex()
    yield value
    for pid in tagged_pids(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def race(root: Path, tag: str, *extra: str) -> list[subprocess.CompletedProcess]:
    go = root / "go"
    command = [sys.executable, "-c", LAUNCHER, str(go), "conduct", *tables(root),
               "--mode", "script", "--jobs", "2", *extra]
    procs = [subprocess.Popen(command, cwd=root, env=environment(root, tag),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              encoding="utf-8", errors="replace", start_new_session=True)
             for _ in range(2)]
    wait_for(lambda: len(list(root.glob("go.*"))) == 2, 60, "both to be ready")
    go.touch()
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_two_conductors_started_at_the_same_instant_run_every_instance_once(tmp_path, tag):
    template = make_project(tmp_path / "template", RACE,
                            {"act": "fault_act", "next": "fault_act"})
    for trial in range(TRIALS):
        root = shutil.copytree(template, tmp_path / f"trial{trial}")
        first, second = race(root, tag)
        assert first.returncode == 0 and second.returncode == 0, (
            trial, first.stderr, second.stderr)
        counts = Counter(ran_log(root))
        assert counts == {f"{word} {key}": 1 for word in ("start", "end")
                          for key in ("act/A", "act/B", "next/A")}, (trial, counts)
        outputs = [first.stdout, second.stdout]
        assert sum("waiting for another conduct" in out for out in outputs) <= 1
        assert any("0 to run, 3 up to date" in out for out in outputs), (trial, outputs)


def test_two_conductors_started_at_the_same_instant_with_no_wait_one_refuses(tmp_path, tag):
    template = make_project(tmp_path / "template", RACE,
                            {"act": "fault_act", "next": "fault_act"})
    for trial in range(5):
        root = shutil.copytree(template, tmp_path / f"trial{trial}")
        results = race(root, tag, "--no-wait")
        codes = sorted(r.returncode for r in results)
        refused = [r for r in results if r.returncode == 2]
        assert codes == [0, 2] or codes == [0, 0], (trial, codes)
        for r in refused:
            assert r.stderr.strip() == (f"error: another conduct is running on "
                                        f"{(root / 'runs').resolve()} (wait for it, or run "
                                        "without --no-wait)"), r.stderr
        assert Counter(ran_log(root)) == {f"{word} {key}": 1 for word in ("start", "end")
                                          for key in ("act/A", "act/B", "next/A")}


@pytest.mark.parametrize("group", [False, True], ids=["conductor-alone", "process-group"])
def test_a_lock_holder_killed_with_9_frees_the_runs_folder_at_once(tmp_path, tag, group):
    """The next conduct proceeds by itself (--no-wait: no waiting, no manual unlock)."""
    root = make_project(tmp_path, {"act": "instance,tag,sleep\nA,A,60\nB,B,\n"})
    proc = start_conduct(root, *tables(root), "--mode", "script", "--jobs", "1",
                         env=environment(root, tag))
    wait_for(lambda: started(root) == ["A"], 60, "A to run")
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait()
    (root / "ran.log").unlink()
    rerun = conduct_cli(root, *tables(root), "--mode", "script", "--no-wait",
                        env=environment(root, tag, DF_FAST="1"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert started(root) == ["A", "B"]
    assert records.read_record(root / "runs/act/A")["status"] == "success"


def ticks_stop(path: Path, within: float) -> None:
    """``path`` stops growing within ``within`` seconds (and stays still for 1 s)."""
    time.sleep(within)
    size = path.stat().st_size
    time.sleep(1.0)
    assert path.stat().st_size == size, f"{path.name} still grows {within + 1:.0f} s later"


@pytest.mark.parametrize("mode, group", [
    pytest.param(["--mode", "script"], False, id="script-conductor-alone"),
    pytest.param(["--mode", "script"], True, id="script-process-group"),
    pytest.param(["--warm"], True, id="warm-kernel-process-group", marks=pytest.mark.kernel),
    pytest.param(["--no-warm"], False, id="kernel-conductor-alone", marks=pytest.mark.kernel),
    pytest.param(["--no-warm"], True, id="kernel-process-group", marks=pytest.mark.kernel),
])
def test_no_process_a_flow_started_outlives_a_conductor_killed_with_9(tmp_path, tag, mode,
                                                                       group):
    """A flow that started a child appending every 0.1 s: after kill -9 of the conductor
    (alone, or its whole group, as a job scheduler does) nothing writes on."""
    root = make_project(tmp_path, {"act": "instance,tag,act,sleep\nA,A,spawn,60\n"})
    ticks = root / "runs/act/A/child_ticks.txt"
    proc = start_conduct(root, *tables(root), *mode, env=environment(root, tag))
    wait_for(lambda: ticks.exists() and ticks.stat().st_size >= 15, 60, "the child to tick")
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait()
    ticks_stop(ticks, 2.0)
    wait_for(lambda: not tagged_pids(tag), 2, "every process of the conductor to exit")
    assert not records.read_record(root / "runs/act/A")
