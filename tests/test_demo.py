"""The README's demo, end to end, as a user runs it: real kernels, the shipped workbook."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, run_cli

pytestmark = pytest.mark.kernel


def results(root: Path) -> dict[str, dict]:
    with open(root / "runs/conductor_results.csv", encoding="utf-8") as handle:
        return {f"{r['stage']}/{r['instance']}": r for r in csv.DictReader(handle)}


def test_demo_runs_green_and_orange_then_skips(tmp_path: Path) -> None:
    for folder in ("examples", "scenarios"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    first = run_cli("conduct", "scenarios/demo.xlsx", "--jobs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = results(tmp_path)
    assert len(rows) == 7 and len({k.split("/")[0] for k in rows}) == 3
    assert {k: r["status"] for k, r in rows.items() if r["status"] != "success"} == {
        "model/high": "warning"}
    assert all(r["action"] == "ran" for r in rows.values())
    assert (tmp_path / "runs/report/all/runs/chart/demand.png").stat().st_size > 1000
    assert "green 6 · orange 1 · red 0" in first.stdout

    again = run_cli("conduct", "scenarios/demo.xlsx", cwd=tmp_path)
    assert again.returncode == 0
    assert all(r["action"] == "skipped" for r in results(tmp_path).values())
    assert "0 to run, 7 up to date" in again.stdout
    assert "warning:" not in first.stdout + again.stdout  # the demo's tables are clean

    # every demo flow also runs alone, its base config's paths handed over as conduct does
    for flow in sorted((tmp_path / "examples").glob("*/*.py")):
        name = flow.relative_to(tmp_path).as_posix()
        alone = run_cli("run", name, "--mode", "script", cwd=tmp_path)
        assert alone.returncode == 0, name + alone.stdout + alone.stderr
    import subprocess
    import sys

    bare = subprocess.run([sys.executable, "examples/flows/prep.py", "--config",
                           "examples/config/flows/prep.json", "--output-dir", "runs/x"],
                          cwd=tmp_path, capture_output=True, text=True, encoding="utf-8",
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert (tmp_path / "runs/x/prepared.csv").is_file()
