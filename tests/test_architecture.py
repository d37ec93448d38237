"""The layout docs/architecture.md draws, held against the code: sub-packages import
only what comes before them, no import cycles, no module named after an exported
function, and ``import ductaflow`` (in every flow) loads nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ductaflow

from .conftest import REPO

PACKAGE = Path(ductaflow.__file__).parent

#: docs/architecture.md, "Import order": a module imports only from lower ranks (or
#: its own part). run_folder/ is the store a plan reads and execution writes.
RANK = {"model": 0, "errors": 0, "environment": 0, "run_folder": 1, "tables": 2, "flow": 2,
        "planning": 3, "execution": 4, "reporting": 5, "schedule": 6, "conductor": 6,
        "cli": 7, "__main__": 8}


def _modules() -> dict[str, Path]:
    return {("ductaflow." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts))
            .removesuffix(".__init__"): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The ductaflow modules ``path`` imports (a name imported from a package counts as
    its submodule when one exists)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    modules = _modules()
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ductaflow"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found |= subs or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ductaflow")}
    return found


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_part_imports_one_that_comes_later() -> None:
    later = []
    for module, path in _modules().items():
        mine = _part(module)
        if mine not in RANK:
            continue
        for target in _imports(path):
            theirs = _part(target)
            if theirs in RANK and theirs != mine and RANK[theirs] > RANK[mine]:
                later.append(f"{module} imports {target}")
    assert later == []
    assert {_part(m) for m in _modules()} - {""} <= set(RANK), "a new part needs a rank"


def test_no_import_cycles_at_module_level() -> None:
    graph = {m: _imports(p, top_level_only=True) for m, p in _modules().items()}
    seen: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        if seen.get(module) == 2:
            return
        assert seen.get(module) != 1, " -> ".join((*path, module))
        seen[module] = 1
        for target in graph.get(module, ()):
            if target != "ductaflow":
                visit(target, (*path, module))
        seen[module] = 2

    for module in graph:
        visit(module, ())


def test_sub_packages_hold_a_docstring_and_no_imports() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), init


def test_no_module_is_named_after_an_exported_name() -> None:
    stems = {m.rsplit(".", 1)[-1] for m in _modules()}
    assert stems & set(ductaflow.__all__) == set()


def _third_party_loaded(code: str) -> set[str]:
    shown = ("import sys; print(sorted({m.split('.')[0] for m in sys.modules"
             " if m.split('.')[0] not in sys.stdlib_module_names}))")
    done = subprocess.run([sys.executable, "-c", f"{code}; {shown}"], capture_output=True,
                          text=True, cwd=REPO, check=True)
    return set(ast.literal_eval(done.stdout))


def test_importing_ductaflow_and_a_flows_helpers_loads_only_the_standard_library() -> None:
    bare = _third_party_loaded("pass")  # site hooks of this environment
    loaded = _third_party_loaded(
        "import ductaflow; from ductaflow import load_cli_config, unpack_config")
    assert loaded - bare == {"ductaflow"}
