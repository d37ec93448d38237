"""Every page of the docs is true: its runnable commands run, its CLI reference is complete.

How a Markdown page (README.md, docs/*.md) marks what this test runs. Everything runs
in document order, in one fresh temporary folder per page that holds a copy of the
repository's demo (``examples/`` and ``scenarios/``), like a fresh clone:

- a fenced block whose info string is ``bash runnable`` runs with ``bash -eo pipefail``
  in that folder (each block starts there, so a block that works in a subfolder
  begins with ``cd``) and must exit 0; ``bash runnable exit=1`` expects status 1;
- a fenced block ``python runnable`` is saved as a script in that folder and run
  with this Python (a script, so ``if __name__ == "__main__":`` works as for users);
- a fenced block ``<lang> file=PATH`` (e.g. ``csv file=scenarios/shout.csv``) is
  written to PATH in that folder: the page shows exactly the file a user creates;
- an HTML comment ``<!-- runnable`` ... ``-->`` is a hidden bash block, for what a user
  does by hand, such as editing a cell in Excel. It is invisible on GitHub.

Renderers take the first word of the info string as the language, so these blocks
still look like ordinary ``bash``/``python``/``csv`` blocks. Install commands (venv,
pip) are never marked: they would take minutes.

Beyond the runnable blocks, every ``ductaflow ...`` command in any ``bash`` block of
any page must parse with the real argument parser, and docs/cli.md must name every
flag and argument of every subcommand, and no flag that does not exist.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ductaflow.cli.commands import build_parser

REPO = Path(__file__).parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 240

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_HIDDEN = re.compile(r"^<!--\s*runnable\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block (or hidden comment block) of a page."""

    page: str
    line: int
    info: str
    text: str

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def language(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def runnable(self) -> bool:
        return "runnable" in self.words[1:]

    @property
    def target(self) -> str | None:
        return self._option("file")

    @property
    def expected_exit(self) -> int:
        return int(self._option("exit") or 0)

    def _option(self, name: str) -> str | None:
        prefix = f"{name}="
        return next((w[len(prefix):] for w in self.words[1:] if w.startswith(prefix)), None)

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.info})"


def blocks(page: Path) -> list[Block]:
    """Fenced blocks and hidden ``<!-- runnable`` blocks of a page, in page order."""
    return parse_blocks(page.read_text(encoding="utf-8"), page.relative_to(REPO).as_posix())


def parse_blocks(text: str, name: str) -> list[Block]:
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence or _HIDDEN.match(lines[i].strip()):
            end_mark = fence.group(1) if fence else "-->"
            info = fence.group(2).strip() if fence else "bash runnable"
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != end_mark:
                body.append(lines[i])
                i += 1
            found.append(Block(name, start + 1, info, "\n".join(body) + "\n"))
        i += 1
    return found


def runnable_pages() -> list[Path]:
    return [p for p in PAGES if any(b.runnable or b.target for b in blocks(p))]


# ---------------------------------------------------------------- run the pages


def fresh_clone(folder: Path) -> Path:
    for part in ("examples", "scenarios"):
        shutil.copytree(REPO / part, folder / part,
                        ignore=shutil.ignore_patterns("runs", "__pycache__"))
    return folder


def block_env() -> dict[str, str]:
    """``ductaflow`` and ``python`` of this environment first on PATH, plain output."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO), "NO_COLOR": "1",
           "COLUMNS": "100"}
    env.pop("DUCTAFLOW_PROJECT_ROOT", None)
    return env


def run_block(block: Block, folder: Path, number: int) -> subprocess.CompletedProcess:
    if block.language == "python":
        script = folder / f"_docs_block_{number}.py"
        script.write_text(block.text, encoding="utf-8")
        command = [sys.executable, script.name]
    else:
        command = [shutil.which("bash") or "bash", "-eo", "pipefail", "-c", block.text]
    return subprocess.run(command, cwd=folder, env=block_env(), capture_output=True,
                          text=True, encoding="utf-8", errors="replace",
                          timeout=BLOCK_TIMEOUT_S)


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bash") is None, reason="the pages' commands are bash")
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_runnable_blocks_of_the_page_succeed(page: Path, tmp_path: Path) -> None:
    folder = fresh_clone(tmp_path)
    timings = []
    for number, block in enumerate(blocks(page)):
        if block.target:
            target = folder / block.target
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            continue
        if not block.runnable:
            continue
        started = time.monotonic()
        done = run_block(block, folder, number)
        timings.append(f"{time.monotonic() - started:5.1f}s  {block}")
        assert done.returncode == block.expected_exit, (
            f"{block} exited {done.returncode}, expected {block.expected_exit}\n"
            f"--- block\n{block.text}--- stdout\n{done.stdout}--- stderr\n{done.stderr}")
    print("\n".join(timings))


def test_the_pages_mark_runnable_blocks_where_expected() -> None:
    """The convention stays in use: the README and the recipes run their commands."""
    names = {p.relative_to(REPO).as_posix() for p in runnable_pages()}
    assert {"README.md", "docs/recipes.md"} <= names


def test_install_commands_are_never_marked_runnable() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.runnable:
                assert not re.search(r"\bpip install\b|\bvenv\b", block.text), str(block)


def test_the_convention_is_read_as_documented() -> None:
    page = "\n".join([
        "```bash", "pip install ductaflow", "```",
        "```bash runnable exit=1", "ductaflow status", "```",
        "<!-- runnable", "echo hidden", "-->",
        "````csv file=scenarios/x.csv", "instance", "a", "````",
        "```python runnable", "print(1)", "```",
    ])
    found = parse_blocks(page, "page.md")
    assert [(b.language, b.runnable, b.target, b.expected_exit, b.line) for b in found] == [
        ("bash", False, None, 0, 1), ("bash", True, None, 1, 4), ("bash", True, None, 0, 7),
        ("csv", False, "scenarios/x.csv", 0, 10), ("python", True, None, 0, 14)]
    assert found[2].text == "echo hidden\n"
    assert found[3].text == "instance\na\n"


# ---------------------------------------------------------------- commands parse


def ductaflow_commands(block: Block) -> list[list[str]]:
    """Each ``ductaflow ...`` command of a shell block, as argv (after ``ductaflow``)."""
    text = re.sub(r"\\\n", " ", block.text)
    commands = []
    for line in text.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words = list(lexer)
        except ValueError:
            continue
        current: list[str] = []
        for word in [*words, ";"]:
            if word and set(word) <= set(";&|"):
                if current[:1] == ["ductaflow"]:
                    commands.append(current[1:])
                current = []
            else:
                current.append(word)
    return commands


def shell_blocks() -> list[Block]:
    return [b for p in PAGES for b in blocks(p) if b.language in ("bash", "sh", "shell")]


def test_every_documented_command_parses() -> None:
    parser = build_parser()
    parser.exit_on_error = False
    checked = 0
    for block in shell_blocks():
        for argv in ductaflow_commands(block):
            if not argv or argv[0] in ("-h", "--help") or "--help" in argv:
                continue
            try:
                parser.parse_args(argv)
            except SystemExit as exc:  # argparse reports most errors by exiting
                raise AssertionError(f"{block}: ductaflow {shlex.join(argv)}") from exc
            checked += 1
    assert checked >= 20, "the pages show the commands they describe"


# ---------------------------------------------------------------- CLI reference


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def cli_sections() -> dict[str, str]:
    """``## ductaflow <command>`` sections of docs/cli.md, by command."""
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ductaflow (\w+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_cli_reference_has_a_section_per_command() -> None:
    assert sorted(cli_sections()) == sorted(subcommands())


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_cli_reference_names_every_flag_and_argument(command: str) -> None:
    section = cli_sections()[command]
    parser = subcommands()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            for flag in action.option_strings:
                assert f"`{flag}" in section, f"docs/cli.md, {command}: {flag} is not described"
        else:
            shown = action.metavar or (
                "{" + ",".join(action.choices) + "}" if action.choices else action.dest)
            assert shown in section, f"docs/cli.md, {command}: {shown} is not described"
    known = {flag for action in parser._actions for flag in action.option_strings}
    for flag in set(re.findall(r"`(--[a-z][a-z-]*)", section)):
        assert flag in known, f"docs/cli.md, {command}: {flag} does not exist"


def test_cli_reference_shows_the_real_usage_lines() -> None:
    """The usage line printed by ``--help`` (at 100 columns) opens each section."""
    sections = cli_sections()
    for command, parser in subcommands().items():
        usage = " ".join(parser.format_usage().split())
        shown = " ".join(sections[command].split())
        assert usage in shown, f"docs/cli.md, {command}: usage differs from --help:\n{usage}"


# ---------------------------------------------------------------- links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_between_pages_lead_somewhere() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:\s]*\.md)?(?:#([^)\s]+))?\)", text):
            if not target and not anchor:
                continue
            linked = (page.parent / target) if target else page
            where = f"{page.relative_to(REPO)} -> {target}#{anchor}"
            assert linked.is_file(), where
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"),
                                      flags=re.MULTILINE)
                assert anchor in {slug(h) for h in headings}, where
