"""Warm kernels from the fork server: fresh process per flow, right folder, no leaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ductaflow import environment
from ductaflow.conductor import conduct
from ductaflow.execution.kernels import KernelServer, warm_supported
from ductaflow.execution.notebook import run_notebook
from ductaflow.model import Action, Status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not warm_supported(), reason="warm kernels need Linux")]

LEAK = """\
# %% tags=["parameters"]
config = {}

# %%
import json
import os
import sys

seen = getattr(json, "ductaflow_leak", None)
json.ductaflow_leak = config["name"]
with open("probe.json", "w", encoding="utf-8") as handle:
    json.dump({"seen": seen, "pid": os.getpid(), "cwd": os.getcwd(),
               "env": os.environ.get("DF_PROBE"), "pandas": "pandas" in sys.modules}, handle)
print(f"probe {config['name']}")
"""


def probe(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe.json").read_text(encoding="utf-8"))


def test_warm_kernels_are_fresh_processes_in_the_right_folder(tmp_path, monkeypatch):
    flow = tmp_path / "leak.py"
    flow.write_text(LEAK, encoding="utf-8")
    server = KernelServer(("pandas",), ready=1)
    try:
        monkeypatch.setenv(environment.KERNEL_SERVER, server.address)
        monkeypatch.setenv("DF_PROBE", "from the caller")
        for name in ("a", "b", "c"):
            run_notebook(flow, {"name": name}, tmp_path / name, tmp_path)
    finally:
        server.close()
    probes = [probe(tmp_path / n) for n in ("a", "b", "c")]
    assert [p["seen"] for p in probes] == [None, None, None]  # no state leaks
    assert len({p["pid"] for p in probes}) == 3
    assert [Path(p["cwd"]) for p in probes] == [tmp_path / n for n in ("a", "b", "c")]
    assert all(p["env"] == "from the caller" for p in probes)
    assert all(p["pandas"] for p in probes)  # pre-imported by the server
    text = (tmp_path / "b" / "leak_execution_output.txt").read_text(encoding="utf-8")
    assert text.startswith("probe b") and "✅ Completed leak" in text


def test_conduct_with_warm_kernels_matches_cold(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "leak.py").write_text(LEAK, encoding="utf-8")
    table = tmp_path / "leak.csv"
    table.write_text("instance,name,flow\n" + "".join(
        f"i{n},n{n},flows/leak.py\n" for n in range(4)), encoding="utf-8")
    warm = conduct(str(table), project_root=tmp_path, runs_dir=tmp_path / "warm", jobs=2)
    cold = conduct(str(table), project_root=tmp_path, runs_dir=tmp_path / "cold", jobs=2,
                   warm=False)
    for results, runs in ((warm, "warm"), (cold, "cold")):
        assert [r.action for r in results] == [Action.RAN] * 4
        assert all(r.status is Status.SUCCESS for r in results)
        assert all(probe(tmp_path / runs / "leak" / f"i{n}")["seen"] is None for n in range(4))
    assert os.environ.get(environment.KERNEL_SERVER) is None  # the caller's environment untouched


PAPERMILL_PROBE = """\
# %% tags=["parameters"]
config = {}

# %%
import json
import sys

with open("probe.json", "w", encoding="utf-8") as handle:
    json.dump({"papermill": "papermill" in sys.modules}, handle)
"""


def test_kernels_of_builds_start_with_papermill_imported(tmp_path):
    """A build runs its flows through papermill: its kernel should not import it again."""
    for folder in ("flows", "builds"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "probe.py").write_text(PAPERMILL_PROBE, encoding="utf-8")
    for name, flow in (("flow", "flows/probe.py"), ("build", "builds/probe.py")):
        table = tmp_path / f"{name}.csv"
        table.write_text(f"instance,flow\n{name},{flow}\n", encoding="utf-8")
        (result,) = conduct(str(table), project_root=tmp_path, jobs=1)
        assert result.status is Status.SUCCESS
    assert probe(tmp_path / "runs" / "flow" / "flow") == {"papermill": False}
    assert probe(tmp_path / "runs" / "build" / "build") == {"papermill": True}


MODULES_PROBE = """\
# %% tags=["parameters"]
config = {}

# %%
import json
import sys

with open("probe.json", "w", encoding="utf-8") as handle:
    json.dump({m: m in sys.modules for m in ("colorsys", "wave")}, handle)
"""


def test_preload_lists_with_commas_name_each_module(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "probe.py").write_text(MODULES_PROBE, encoding="utf-8")
    table = tmp_path / "probe.csv"
    table.write_text("instance,flow\nflag,flows/probe.py\n", encoding="utf-8")
    conduct(str(table), project_root=tmp_path, jobs=1, preload=["colorsys, wave"])
    assert probe(tmp_path / "runs" / "probe" / "flag") == {"colorsys": True, "wave": True}
    (tmp_path / "pyproject.toml").write_text('[tool.ductaflow]\npreload = ["wave,colorsys"]\n',
                                             encoding="utf-8")
    table.write_text("instance,flow\nproject,flows/probe.py\n", encoding="utf-8")
    conduct(str(table), project_root=tmp_path, jobs=1)
    assert probe(tmp_path / "runs" / "probe" / "project") == {"colorsys": True, "wave": True}


IMPORTS_PROBE = """\
# %% tags=["parameters"]
config = {}

# %%
import json
import sys

with open("probe.json", "w", encoding="utf-8") as handle:
    json.dump({m: m in sys.modules for m in ("openpyxl", "defusedxml")}, handle)

# %%
import openpyxl
from defusedxml import ElementTree
"""


def test_what_flows_import_is_warmed_without_a_flag_unless_the_project_turns_it_off(tmp_path):
    """No --preload, no pyproject: the packages the flow imports are in its kernel
    before its first line runs. ``preload = []`` in pyproject.toml turns that off."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "probe.py").write_text(IMPORTS_PROBE, encoding="utf-8")
    table = tmp_path / "probe.csv"
    table.write_text("instance,flow\nauto,flows/probe.py\n", encoding="utf-8")
    conduct(str(table), project_root=tmp_path, jobs=1)
    assert probe(tmp_path / "runs" / "probe" / "auto") == {"openpyxl": True, "defusedxml": True}
    (tmp_path / "pyproject.toml").write_text("[tool.ductaflow]\npreload = []\n",
                                             encoding="utf-8")
    table.write_text("instance,flow\noff,flows/probe.py\n", encoding="utf-8")
    conduct(str(table), project_root=tmp_path, jobs=1)
    assert probe(tmp_path / "runs" / "probe" / "off") == {"openpyxl": False,
                                                         "defusedxml": False}


def test_flow_imports_are_installed_packages_a_builds_flows_included(tmp_path):
    """The standard library, the project's own modules and fork-unsafe packages are
    left out; a build's flows, named by path in its source, are read too."""
    from ductaflow.execution.startup import flow_imports

    (tmp_path / "flows").mkdir()
    (tmp_path / "builds").mkdir()
    (tmp_path / "mylib.py").write_text("X = 1\n", encoding="utf-8")
    (tmp_path / "flows" / "a.py").write_text(
        "import os, json\nimport mylib\nfrom openpyxl.utils import get_column_letter\n"
        "if False:\n    import torch\nfrom . import nothing\n", encoding="utf-8")
    (tmp_path / "flows" / "b.py").write_text("import jinja2\n", encoding="utf-8")
    (tmp_path / "flows" / "sub").mkdir()
    (tmp_path / "flows" / "sub" / "c.py").write_text("import filelock\n", encoding="utf-8")
    (tmp_path / "flows" / "sub" / "d.py").write_text("import tomli_w\n", encoding="utf-8")
    (tmp_path / "builds" / "all.py").write_text(
        'from ductaflow import run_notebook\nimport rich.console\n'
        'for flow in ("flows/a.py", "flows/b.py", "flows/missing.py"):\n'
        '    run_notebook(flow)\n'
        'for step in ("c",):\n'
        '    run_notebook(f"flows/sub/{step}.py")\n', encoding="utf-8")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        found = flow_imports(tmp_path, ["builds/all.py"])
    finally:
        sys.path.remove(str(tmp_path))
    assert sorted(found) == ["filelock", "jinja2", "openpyxl", "rich"]
