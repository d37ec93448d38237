"""``ductaflow init`` and ``ductaflow new``: a project or a flow that runs green at once.

Nothing existing is ever overwritten: every target is checked before the first file
is written, so a refused command changes nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ductaflow.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

FLOW_TEMPLATE = '''\
# %% [markdown]
# # {title}
#
# Runs as a notebook (`ductaflow run {path}`) or as a script
# (`python {path} --config {config} --output-dir runs/_run/{name}`).

# %% tags=["parameters"]
# Defaults for running the cells by hand; a run injects its own config after this cell.
config = {defaults}

# %%
from ductaflow import is_notebook_execution, load_cli_config, record, unpack_config

if not is_notebook_execution():
    config = load_cli_config("{config}", "{title}")
vars().update(unpack_config(config, "{title}", locals()))

# %%
{body}
'''

FLOW_BODY = '''\
message = f"{greeting}, {who}!"
print(message)
with open("message.txt", "w", encoding="utf-8") as handle:
    handle.write(message + "\\n")
record(letters=len(message))  # a value for the results tables: ductaflow results'''

BUILD_BODY = '''\
from ductaflow import run_notebook

# A build runs flows in order, each in its own folder inside this instance's folder.
run_notebook("flows/hello.py", config={"greeting": greeting, "who": who},
             execution_dir="runs/hello")'''

GITIGNORE = "runs/\n.ipynb_checkpoints/\n__pycache__/\n"


def flow_files(kind: str, name: str) -> dict[Path, str]:
    """The flow (or build) file and its base config, relative to the project root."""
    if kind not in ("flow", "build"):
        raise UsageError(f"unknown kind {kind!r}: use flow or build")
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a valid flow name",
                         hint="letters, digits and underscores, not starting with a digit")
    folder = "flows" if kind == "flow" else "builds"
    path = f"{folder}/{name}.py"
    config = f"config/{folder}/{name}.json"
    title = name.replace("_", " ").capitalize()
    body = FLOW_BODY if kind == "flow" else BUILD_BODY
    defaults = {"greeting": "Hello", "who": "world"}
    source = FLOW_TEMPLATE.format(title=title, path=path, config=config, name=name, body=body,
                                  defaults=repr(defaults))
    return {Path(path): source, Path(config): json.dumps(defaults, indent=2) + "\n"}


def new(kind: str, name: str, project_root: Path) -> list[Path]:
    """Write a new flow or build and its config; refuse if either exists."""
    return _write_all(project_root, flow_files(kind, name))


def init(target: Path) -> list[Path]:
    """A new project in ``target`` whose starter table runs green at once."""
    files = {**flow_files("flow", "hello"), Path(".gitignore"): GITIGNORE}
    table = Path("scenarios/scenarios.xlsx")
    _refuse_existing(target, [*files, table])
    for folder in ("flows", "builds", "config/flows", "config/builds", "scenarios", "data"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    written = _write_all(target, files)
    _starter_table(target / table)
    return [*written, target / table]


def _refuse_existing(root: Path, targets: list[Path]) -> None:
    existing = [p.as_posix() for p in targets if (root / p).exists()]
    if existing:
        raise UsageError(f"refusing to overwrite existing files in {root}: "
                         + ", ".join(existing))


def _write_all(root: Path, files: dict[Path, str]) -> list[Path]:
    _refuse_existing(root, list(files))
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return [root / p for p in files]


def _starter_table(path: Path) -> None:
    """One stage, ``hello``, three instances: the default flow is ``flows/hello.py``."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "hello"
    for row in (["instance", "greeting", "who", "# note"],
                ["world", "Hello", "world", "one row = one instance"],
                ["team", "Hi", "team", "add a row, run again: only it runs"],
                ["{who}_fr", "Bonjour", "Paris", "the instance name is a template"]):
        sheet.append(row)
    for letter in "ABCD":
        sheet.column_dimensions[letter].width = 24
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
