"""ductaflow init and new: a newcomer's project runs green at once; --accept then skips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ductaflow.cli.scaffold import flow_files, init, new

from .conftest import run_cli


def results(project: Path) -> dict[str, dict[str, str]]:
    with open(project / "runs" / "conductor_results.csv", encoding="utf-8", newline="") as f:
        return {f"{row['stage']}/{row['instance']}": row for row in csv.DictReader(f)}


def test_init_writes_the_documented_project(tmp_path: Path) -> None:
    written = init(tmp_path / "p")
    root = tmp_path / "p"
    assert sorted(p.relative_to(root).as_posix() for p in written) == [
        ".gitignore", "config/flows/hello.json", "flows/hello.py", "scenarios/scenarios.xlsx"]
    for folder in ("flows", "builds", "config/flows", "config/builds", "scenarios", "data"):
        assert (root / folder).is_dir(), folder
    assert "runs/" in (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert json.loads((root / "config/flows/hello.json").read_text(encoding="utf-8")) == {
        "greeting": "Hello", "who": "world"}


def test_init_refuses_to_overwrite_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text("mine\n", encoding="utf-8")
    done = run_cli("init", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to overwrite existing files")
    assert "flows/hello.py" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["flows", "hello.py"]
    assert (tmp_path / "flows" / "hello.py").read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("kind, folder", [("flow", "flows"), ("build", "builds")])
def test_new_writes_a_flow_or_build_and_its_config(tmp_path: Path, kind: str,
                                                   folder: str) -> None:
    written = new(kind, "data_prep", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"{folder}/data_prep.py", f"config/{folder}/data_prep.json"]
    source = (tmp_path / folder / "data_prep.py").read_text(encoding="utf-8")
    assert '# %% tags=["parameters"]' in source
    assert f'load_cli_config("config/{folder}/data_prep.json", "Data prep")' in source
    compile(source, "data_prep.py", "exec")


def test_new_refuses_bad_names_and_existing_files(tmp_path: Path) -> None:
    for bad in ("2bad", "has-dash", "a b", "../up", ""):
        done = run_cli("new", "flow", bad, cwd=tmp_path)
        assert done.returncode == 2, bad
        assert "Traceback" not in done.stderr
    assert run_cli("new", "flow", "ok", cwd=tmp_path).returncode == 0
    again = run_cli("new", "flow", "ok", cwd=tmp_path)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_a_new_flow_runs_as_a_script_with_its_config(tmp_path: Path) -> None:
    new("flow", "greet", tmp_path)
    done = run_cli("run", "flows/greet.py", "--mode", "script", "--output-dir", "runs/x",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs/x/message.txt").read_text(encoding="utf-8") == "Hello, world!\n"
    assert (tmp_path / "runs/x/greet_execution_output.txt").read_text(
        encoding="utf-8").splitlines()[-1].startswith("✅ Completed greet | Time: ")


@pytest.mark.kernel
def test_init_then_conduct_is_green_and_a_rerun_skips_everything(tmp_path: Path) -> None:
    assert run_cli("init", "p", cwd=tmp_path).returncode == 0
    project = tmp_path / "p"
    first = run_cli("conduct", "scenarios/scenarios.xlsx", cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "green 3 · orange 0 · red 0" in first.stdout
    got = results(project)
    assert sorted(got) == ["hello/Paris_fr", "hello/team", "hello/world"]
    assert {(r["action"], r["status"]) for r in got.values()} == {("ran", "success")}
    assert (project / "runs/hello/Paris_fr/message.txt").read_text(
        encoding="utf-8") == "Bonjour, Paris!\n"
    assert (project / "runs/hello/world/hello.ipynb").is_file()
    again = run_cli("conduct", "scenarios/scenarios.xlsx", cwd=project)
    assert again.returncode == 0
    assert {r["action"] for r in results(project).values()} == {"skipped"}


@pytest.mark.kernel
def test_accept_then_conduct_skips_everything(tmp_path: Path) -> None:
    init(tmp_path)
    new("build", "greetings", tmp_path)
    (tmp_path / "scenarios" / "greetings.csv").write_text(
        "instance,greeting,who\nall,Hi,all\n", encoding="utf-8")
    tables = ["scenarios/scenarios.xlsx", "scenarios/greetings.csv"]
    first = run_cli("conduct", *tables, "--mode", "script", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(results(tmp_path)) == 4
    assert (tmp_path / "runs/greetings/all/runs/hello/message.txt").is_file()

    # A cosmetic edit of the flow the build runs, and of every hello instance's flow.
    flow = tmp_path / "flows" / "hello.py"
    flow.write_text(flow.read_text(encoding="utf-8").replace("# # Hello", "# # Hello!"),
                    encoding="utf-8")
    dry = run_cli("conduct", *tables, "--dry-run", cwd=tmp_path)
    assert dry.stdout.count("code changed: flows/hello.py") == 4, dry.stdout

    accepted = run_cli("conduct", *tables, "--accept", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.count("accepted: code changed: flows/hello.py") == 4
    assert {r["action"] for r in results(tmp_path).values()} == {"skipped"}

    after = run_cli("conduct", *tables, "--dry-run", cwd=tmp_path)
    assert "0 to run, 4 up to date" in after.stdout, after.stdout
    rerun = run_cli("conduct", *tables, cwd=tmp_path)
    assert rerun.returncode == 0
    assert {r["action"] for r in results(tmp_path).values()} == {"skipped"}


def test_flow_files_are_the_documented_pair() -> None:
    files = flow_files("flow", "model")
    assert [p.as_posix() for p in files] == ["flows/model.py", "config/flows/model.json"]
