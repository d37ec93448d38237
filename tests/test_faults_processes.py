"""What a flow starts ends with it, and no flow outlives its conductor; what a flow
prints is data, whatever the bytes (issue 20, classes 5 and 6). Real conducts, real
processes, in both modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, add_flow, run_cli

ORPHANS = Path(__file__).parent / "orphans.py"
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="finds leftover processes through /proc (Linux)")

LINGERING = '''# %% tags=["parameters"]
config = {}
# %%
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.05)"])
print("child", child.pid, flush=True)
time.sleep(60)
'''


def _lingering_project(root: Path) -> Path:
    (root / "flows").mkdir(parents=True)
    add_flow(root, "act", LINGERING)
    (root / "act.csv").write_text("instance\na\n", encoding="utf-8")
    return root


#: (way of running, trials): 30 kills in all, more where a trial costs less.
KILLS = (("script", 7), ("script", 7), ("notebook", 4), ("notebook", 4),
         ("notebook+--no-warm", 4), ("notebook+--no-warm", 4))


@linux_only
def test_no_flow_nor_its_child_outlives_a_kill_9_of_its_conductor_at_any_moment(tmp_path):
    """30 kills of the conductor, spread over the first 200 ms after the instance
    started, in every way of running a flow: 1.2 s later nothing the conductor started
    (worker, kernel server, kernel, script, the flow's own child) is alive."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = []
    for n, (mode, count) in enumerate(KILLS):
        projects = [_lingering_project(tmp_path / f"{n}-{i}") for i in range(count)]
        shift = 200 // (2 * count) if n % 2 else 0  # the pair's delays interleave
        runs.append(subprocess.Popen(
            [sys.executable, str(ORPHANS), mode, str(200 - shift), *map(str, projects)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            encoding="utf-8"))
    trials = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        trials += [json.loads(line) for line in out.splitlines()]
    assert len(trials) == 30 and all(t["started"] for t in trials)
    survived = [f"{Path(t['project']).name} at {t['delay_ms']} ms: {t['survivors']}"
                for t in trials if t["survivors"]]
    assert not survived, "\n".join(survived)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


@linux_only
@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_a_child_a_flow_started_ends_with_the_instance_and_does_not_keep_it_running(
        project, mode):
    """The child inherits the flow's stdout and would sleep 60 s: the instance is
    green as soon as its flow ends, the child is gone, what it printed before is kept
    (script mode: notebook kernels do not capture what children print)."""
    pid_file = project / "child.pid"
    add_flow(project, "act", f'''# %% tags=["parameters"]
config = {{}}
# %%
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
                          "import time\\nprint('child says hi', flush=True)\\ntime.sleep(60)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(0.5)
print("flow done")
''')
    (project / "act.csv").write_text("instance\na\n", encoding="utf-8")
    began = time.monotonic()
    done = run_cli("conduct", "act.csv", "--mode", mode, cwd=project, timeout=60)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 30, took
    folder = project / "runs" / "act" / "a"
    pid = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _pid_alive(pid)
    output = (folder / "act_execution_output.txt").read_text(encoding="utf-8")
    assert "flow done" in output and "✅" in output.splitlines()[-1]
    if mode == "script":
        assert "child says hi" in output


@pytest.mark.parametrize("mode", ["script", "notebook"])
@pytest.mark.parametrize("how", ["sys.stdout.close()", "os.close(1); os.close(2)"])
def test_a_flow_that_closes_its_stdout_is_green_in_both_modes(project, mode, how):
    add_flow(project, "act", f'''# %% tags=["parameters"]
config = {{}}
# %%
import os, sys
print("before", flush=True)
{how}
open({str(project / "after.txt")!r}, "w").write("ran on")
''')
    (project / "act.csv").write_text("instance\na\n", encoding="utf-8")
    done = run_cli("conduct", "act.csv", "--mode", mode, cwd=project, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = project / "runs" / "act" / "a"
    assert (project / "after.txt").read_text() == "ran on"
    lines = (folder / "act_execution_output.txt").read_text(encoding="utf-8").splitlines()
    assert "before" in lines and lines[-1].startswith("✅")


@pytest.mark.parametrize("mode", ["script", "notebook"])
def test_any_bytes_a_flow_prints_are_data_a_record_separator_from_a_cell_too(project, mode):
    """A cell holding U+001E (the old runner's footer mark) is printed by the flow, then
    every byte value: the run is green and everything printed after it is kept."""
    add_flow(project, "act", '''# %% tags=["parameters"]
config = {}
# %%
import sys
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "act")
print("cell:", config["note"], "after the mark")
every = bytes(range(256))
if hasattr(sys.stdout, "buffer"):  # a script: raw bytes, invalid UTF-8 too
    sys.stdout.flush()
    sys.stdout.buffer.write(every + b"\\n")
    sys.stdout.buffer.flush()
else:  # a kernel's stream takes text
    print(every.decode("latin-1"))
print("✅ act | 0.1s | a line that looks like a footer")
print("last words")
''')
    (project / "act.csv").write_text('instance,note\na,"x\x1ey\x1ez"\n', encoding="utf-8")
    done = run_cli("conduct", "act.csv", "--mode", mode, cwd=project, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    output = (project / "runs" / "act" / "a" / "act_execution_output.txt").read_text(
        encoding="utf-8")
    assert "x\x1ey\x1ez after the mark" in output
    lines = output.splitlines()
    assert "last words" in lines and lines[-1].startswith("✅ Completed act")
    status = (project / "runs" / "conductor_results.csv").read_text(encoding="utf-8")
    assert "success" in status
