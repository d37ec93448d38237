"""run_notebook, script mode and `ductaflow run` with real kernels on tmp_path projects."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest

from ductaflow import environment
from ductaflow.errors import FlowError, FlowTimeoutError, KernelDiedError
from ductaflow.execution.notebook import run_notebook
from ductaflow.execution.script import run_script

from .conftest import add_flow, run_cli

pytestmark = pytest.mark.kernel


def output_of(run_dir: Path, stem: str) -> str:
    return (run_dir / f"{stem}_execution_output.txt").read_text(encoding="utf-8")


def test_run_notebook_captures_output_saves_config_and_notebook(project: Path) -> None:
    flow = add_flow(project, "nb_hello")
    run_dir = project / "runs" / "hello"
    cwd = os.getcwd()
    nb = run_notebook(flow, {"name": "north", "number": 21}, run_dir, project)
    assert os.getcwd() == cwd  # never changes the caller's working directory
    assert nb == run_dir / "nb_hello.ipynb" and nb.is_file()
    saved = json.loads((run_dir / "nb_hello_config.json").read_text(encoding="utf-8"))
    assert saved == {"name": "north", "number": 21, "_project_root": str(project)}
    assert (run_dir / "result.txt").read_text(encoding="utf-8") == "north 42\n"
    text = output_of(run_dir, "nb_hello")
    assert "hello north" in text and "to stderr" in text
    assert text.splitlines()[-1].startswith("✅ Completed nb_hello | Time: ")
    assert not (project / "flows" / "nb_hello.ipynb").exists()  # never beside the source


def test_failure_keeps_artifacts_and_names_cell_and_exception(project: Path) -> None:
    flow = add_flow(project, "nb_fail")
    run_dir = project / "runs" / "fail"
    with pytest.raises(FlowError) as info:
        run_notebook(flow, {}, run_dir, project, export_html=True)
    assert info.value.ename == "ValueError" and "the model diverged" in str(info.value)
    assert "cell" in str(info.value)
    text = output_of(run_dir, "nb_fail")
    assert "before the failure" in text and "never printed" not in text
    assert "Traceback" in text or "ValueError" in text.splitlines()[-2]
    assert "\x1b[" not in text  # ANSI colours stripped from the traceback
    assert text.splitlines()[-1].startswith("❌ Failed nb_fail | Time: ")
    assert text.splitlines()[-1].endswith("| ValueError: the model diverged")
    for name in ("nb_fail.ipynb", "nb_fail.html", "nb_fail_config.json"):
        assert (run_dir / name).is_file()


def test_dead_kernel_and_timeout_are_reported_as_such(project: Path) -> None:
    with pytest.raises(KernelDiedError):
        run_notebook(add_flow(project, "nb_die"), {}, project / "runs" / "die", project)
    assert "about to die" in output_of(project / "runs" / "die", "nb_die")
    kept = json.loads((project / "runs/die/nb_die.ipynb").read_text(encoding="utf-8"))
    assert "about to die" in json.dumps(kept)  # the notebook keeps what the kernel sent
    with pytest.raises(FlowTimeoutError):
        run_notebook(add_flow(project, "nb_slow"), {}, project / "runs" / "slow", project,
                     timeout=8)
    text = output_of(project / "runs" / "slow", "nb_slow")
    assert "started" in text and "never printed" not in text
    assert text.splitlines()[-1].startswith("❌ Failed nb_slow") and "Timeout" in text
    assert "started" in (project / "runs/slow/nb_slow.ipynb").read_text(encoding="utf-8")


@pytest.mark.parametrize("code, fails", [(0, False), (1, True)])
def test_sys_exit_zero_ends_early_without_error(project: Path, code: int, fails: bool) -> None:
    flow = add_flow(project, "nb_exit")
    run_dir = project / "runs" / f"exit{code}"
    if fails:
        with pytest.raises(FlowError):
            run_notebook(flow, {"code": code}, run_dir, project)
    else:
        run_notebook(flow, {"code": code}, run_dir, project)
    text = output_of(run_dir, "nb_exit")
    assert "exiting early" in text and "never printed" not in text
    assert text.splitlines()[-1].startswith("❌ Failed" if fails else "✅ Completed")


def test_output_is_written_while_the_flow_runs(project: Path) -> None:
    flow = add_flow(project, "nb_slow")
    run_dir = project / "runs" / "live"
    seen = threading.Event()

    def watch() -> None:
        path = run_dir / "nb_slow_execution_output.txt"
        for _ in range(300):
            if path.exists() and "started" in path.read_text(encoding="utf-8"):
                seen.set()
                return
            threading.Event().wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with pytest.raises(FlowTimeoutError):
        run_notebook(flow, {}, run_dir, project, timeout=4)
    watcher.join()
    assert seen.is_set()


LEFT_OPEN = """\
# %% tags=["parameters"]
config = {}

# %%
import gzip
import logging

plain = open("plain.txt", "w", encoding="utf-8")
plain.write("plain\\n")
packed = gzip.open("packed.gz", "wt", encoding="utf-8")
packed.write("packed\\n")
import keeper  # keeps a file open in a module global

log = logging.getLogger("flow")
log.addHandler(logging.FileHandler("flow.log", encoding="utf-8"))
log.error("logged")
print("left everything open")
"""


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_files_a_flow_leaves_open_reach_disk(project: Path, monkeypatch, warm: bool) -> None:
    """A kernel ends quicker than Python's own exit; what the flow wrote still lands."""
    from ductaflow.execution.kernels import KernelServer, warm_supported

    if warm and not warm_supported():
        pytest.skip("warm kernels need Linux")
    flow = add_flow(project, "left_open", LEFT_OPEN)
    run_dir = project / "runs" / "left_open"
    run_dir.mkdir(parents=True)
    (run_dir / "keeper.py").write_text(
        'HANDLE = open("module_global.txt", "w", encoding="utf-8")\n'
        'HANDLE.write("from a module\\n")\n', encoding="utf-8")
    server = KernelServer(ready=1) if warm else None
    try:
        if server is not None:
            monkeypatch.setenv(environment.KERNEL_SERVER, server.address)
        run_notebook(flow, {}, run_dir, project)
    finally:
        if server is not None:
            server.close()
    assert (run_dir / "plain.txt").read_text(encoding="utf-8") == "plain\n"
    with gzip.open(run_dir / "packed.gz", "rt", encoding="utf-8") as packed:
        assert packed.read() == "packed\n"
    assert (run_dir / "module_global.txt").read_text(encoding="utf-8") == "from a module\n"
    assert (run_dir / "flow.log").read_text(encoding="utf-8") == "logged\n"


def test_notebook_script_and_cli_give_identical_outputs(project: Path) -> None:
    flow = add_flow(project, "nb_hello")
    config = {"name": "east", "number": 4, "warn": True}
    run_notebook(flow, config, project / "runs" / "nb", project)
    run_script(flow, config, project / "runs" / "script", project)
    (project / "c.json").write_text(json.dumps(config), encoding="utf-8")
    done = run_cli("run", "flows/nb_hello.py", "--config", "c.json", "--output-dir", "runs/cli",
                   cwd=project)
    assert done.returncode == 0, done.stderr
    assert "hello east" in done.stdout
    bodies = []
    for mode in ("nb", "script", "cli"):
        run_dir = project / "runs" / mode
        assert (run_dir / "result.txt").read_text(encoding="utf-8") == "east 8\n"
        lines = output_of(run_dir, "nb_hello").splitlines()
        assert lines[-1].startswith("✅ Completed nb_hello")
        bodies.append(sorted(lines[:-1]))
        saved = json.loads((run_dir / "nb_hello_config.json").read_text(encoding="utf-8"))
        assert saved["_project_root"] == str(project)
    assert bodies[0] == bodies[1] == bodies[2]
    assert "Warning: something looks off" in bodies[0]


def test_two_instances_of_one_flow_at_once(project: Path) -> None:
    flow = add_flow(project, "nb_hello")
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            run_notebook(flow, {"name": name, "number": 1}, project / "runs" / name, project)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name in ("a", "b"):
        assert (project / "runs" / name / "result.txt").read_text(encoding="utf-8") == f"{name} 2\n"


def test_no_execute_prepares_a_ready_notebook(project: Path) -> None:
    add_flow(project, "nb_hello")
    done = run_cli("run", "flows/nb_hello.py", "--output-dir", "runs/prep", "--no-execute",
                   cwd=project)
    assert done.returncode == 0, done.stderr
    nb = json.loads((project / "runs/prep/nb_hello.ipynb").read_text(encoding="utf-8"))
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "_project_root" in "".join(injected[0]["source"])
    assert not (project / "runs/prep/result.txt").exists()
    assert not (project / "runs/prep/nb_hello_execution_output.txt").exists()


def test_cli_exit_codes(project: Path) -> None:
    add_flow(project, "nb_fail")
    failed = run_cli("run", "flows/nb_fail.py", "--mode", "script", cwd=project)
    assert failed.returncode == 1
    assert "ValueError: the model diverged" in failed.stderr
    assert "Traceback" not in failed.stderr.split("error:")[-1]
    missing = run_cli("run", "flows/nope.py", cwd=project)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: flow not found: flows/nope.py"
    (project / "bad.json").write_text("{", encoding="utf-8")
    bad = run_cli("run", "flows/nb_fail.py", "--config", "bad.json", cwd=project)
    assert bad.returncode == 2 and "bad.json" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_script_mode_reports_exit_codes_and_process_death(project: Path) -> None:
    flow = add_flow(project, "nb_exit")
    run_script(flow, {"code": 0}, project / "runs" / "s0", project)
    with pytest.raises(FlowError) as info:
        run_script(flow, {"code": 2}, project / "runs" / "s2", project)
    assert info.value.summary == "SystemExit: 2"
    assert output_of(project / "runs" / "s2", "nb_exit").splitlines()[-1].endswith(
        "| SystemExit: 2")
    with pytest.raises(KernelDiedError):
        run_script(add_flow(project, "nb_die"), {}, project / "runs" / "sd", project)
    last = output_of(project / "runs" / "sd", "nb_die").splitlines()[-1]
    assert last.startswith("❌ Failed nb_die") and "exit code 3" in last


def test_ipynb_flows_run_like_py_flows(project: Path) -> None:
    import jupytext

    source = add_flow(project, "nb_hello")
    ipynb = project / "flows" / "nb_hello_nb.ipynb"
    jupytext.write(jupytext.read(source), ipynb)
    run_notebook(ipynb, {"name": "west", "number": 5}, project / "runs" / "ipynb", project)
    assert (project / "runs/ipynb/result.txt").read_text(encoding="utf-8") == "west 10\n"
    assert output_of(project / "runs/ipynb", "nb_hello_nb").splitlines()[-1].startswith(
        "✅ Completed nb_hello_nb")


def test_debug_prepares_the_notebook_with_the_saved_config(project: Path) -> None:
    add_flow(project, "nb_fail")
    failed = run_cli("run", "flows/nb_fail.py", "--output-dir", "runs/f",
                     "--config", str(_write_json(project / "c.json", {"alpha": 3})),
                     cwd=project)
    assert failed.returncode == 1
    run_dir = project / "runs/f"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    done = run_cli("debug", "runs/f", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "last run  ❌ Failed nb_fail" in done.stdout
    assert "jupyter lab" in done.stdout and '"type": "debugpy"' in done.stdout
    assert "${workspaceFolder}/flows/nb_fail.py" in done.stdout
    assert "python -m pdb flows/nb_fail.py --config" in done.stdout
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing lost
    nb = json.loads((run_dir / "nb_fail_debug.ipynb").read_text(encoding="utf-8"))
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert '"alpha": 3' in "".join(injected[0]["source"])
    assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


DEBUGGED = """\
# %% tags=["parameters"]
config = {}
# %%
import ductaflow
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "debugged")
print("stepping with", config["alpha"])
ductaflow.record(alpha=config["alpha"])
"""


def test_the_debug_recipe_leaves_the_runs_own_files_alone(project: Path) -> None:
    import subprocess
    import sys

    add_flow(project, "debugged", DEBUGGED)
    done = run_cli("run", "flows/debugged.py", "--output-dir", "runs/d", "--mode", "script",
                   "--config", str(_write_json(project / "c.json", {"alpha": 3})),
                   cwd=project)
    assert done.returncode == 0, done.stderr
    run_dir = project / "runs/d"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    shown = run_cli("debug", "runs/d", cwd=project).stdout
    recipe = next(line for line in shown.splitlines() if "python -m pdb" in line).split()
    assert recipe[-1] == "--debug"
    stepped = subprocess.run([sys.executable, *recipe[3:]], cwd=project, capture_output=True,
                             text=True, encoding="utf-8", timeout=60,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert stepped.returncode == 0, stepped.stderr
    assert "stepping with 3" in stepped.stdout
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k in before} == before
    debug_output = (run_dir / "debugged_debug_output.txt").read_text(encoding="utf-8")
    assert "stepping with 3" in debug_output and "✅ Completed debugged" in debug_output


def test_run_takes_a_config_saved_with_a_bom_as_conduct_does(project: Path) -> None:
    """Notepad saves UTF-8 with a byte order mark: every config reader accepts it."""
    add_flow(project, "nb_hello")
    text = json.dumps({"name": "bom", "number": 2})
    (project / "c.json").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    for mode in ("notebook", "script"):
        done = run_cli("run", "flows/nb_hello.py", "--config", "c.json", "--mode", mode,
                       "--output-dir", f"runs/{mode}", cwd=project)
        assert done.returncode == 0, done.stderr
        assert (project / f"runs/{mode}/result.txt").read_text(encoding="utf-8") == "bom 4\n"


@pytest.mark.parametrize("saved", ["{", "[1, 2]", "\xff\xfe not text"])
def test_debug_on_a_corrupt_saved_config_is_one_line_and_exit_2(project: Path,
                                                                 saved: str) -> None:
    add_flow(project, "nb_hello")
    run_dir = project / "runs/f"
    run_dir.mkdir(parents=True)
    config = run_dir / "nb_hello_config.json"
    config.write_bytes(saved.encode("latin-1"))
    done = run_cli("debug", "runs/f", cwd=project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "nb_hello_config.json" in done.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["nb_hello_config.json"]


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
