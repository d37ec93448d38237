"""What a terminal shows: the version, and orange that is not red on 16 colours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ductaflow

from .conftest import add_flow, run_cli

FLOW = """\
# %% tags=["parameters"]
config = {}
# %%
from ductaflow import is_notebook_execution, load_cli_config
if not is_notebook_execution():
    config = load_cli_config(None, "a")
if config["k"] == "w":
    print("Warning: careful")
if config["k"] == "e":
    raise ValueError("bad")
"""


def test_the_version(tmp_path: Path) -> None:
    done = run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"ductaflow {ductaflow.__version__}"


@pytest.mark.kernel
def test_orange_is_not_red_on_a_16_colour_terminal(project: Path) -> None:
    add_flow(project, "a", FLOW)
    (project / "a.csv").write_text("instance,k\nw,w\ne,e\nok,ok\n", encoding="utf-8")
    done = run_cli("conduct", "a.csv", "--mode", "script", cwd=project,
                   env={"FORCE_COLOR": "1", "TERM": "xterm", "COLORTERM": ""})
    assert done.returncode == 1

    def colour(key: str) -> str:
        found = re.search(r"\x1b\[(\d+)m●\x1b\[0m " + re.escape(key) + " ", done.stdout)
        assert found, done.stdout
        return found.group(1)

    assert (colour("a/ok"), colour("a/w"), colour("a/e")) == ("32", "33", "31")
