"""The files a flow leaves in its folder, and the one footer line every output ends with.

Standard library only: flows running as plain scripts use it too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

#: Most bytes of captured output kept per run; a flow printing gigabytes must not
#: fill the disk or the report. The footer is written past the cap.
OUTPUT_CAP_BYTES = 50 * 1024 * 1024


def config_path(run_dir: Path, stem: str) -> Path:
    return run_dir / f"{stem}_config.json"


def notebook_path(run_dir: Path, stem: str) -> Path:
    return run_dir / f"{stem}.ipynb"


def output_path(run_dir: Path, stem: str) -> Path:
    return run_dir / f"{stem}_execution_output.txt"


def footer_line(stem: str, seconds: float, error: str | None = None) -> str:
    """SPEC.md's footer, which users grep for across all runs."""
    if error is None:
        return f"✅ Completed {stem} | Time: {seconds:.2f}s"
    error = " ".join(error.split())
    return f"❌ Failed {stem} | Time: {seconds:.2f}s | {error}"


def is_footer(line: str) -> bool:
    return line.startswith(("✅ Completed ", "❌ Failed "))


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Save a config as people read it: sorted keys, indented, UTF-8."""
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")


class OutputWriter:
    """A file-like sink for captured output: flushed on every write, capped in size.

    papermill calls ``write``/``flush`` once per kernel stream message, so the file
    grows as the flow prints and ``tail -f`` shows progress. With ``echo`` the same
    text goes to this process's stdout.
    """

    def __init__(self, path: Path, echo: bool = False, cap: int = OUTPUT_CAP_BYTES,
                 mode: str = "w"):
        self.path = path
        self.echo = echo
        self.cap = cap
        self.written = 0
        self.truncated = False
        self.at_line_start = True
        self._file: TextIO = open(path, mode, encoding="utf-8", errors="replace")

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self.echo:
            _echo(text)
        self._to_file(text)
        return len(text)

    def _to_file(self, text: str) -> None:
        if self.truncated:
            return
        room = self.cap - self.written
        # isascii() is O(1) in CPython: most output needs no encoded copy to be measured.
        size = len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))
        if size <= room:
            self._write_in_slices(text)
            self.written += size
            self.at_line_start = text.endswith("\n")
        else:
            if not text.isascii():
                text = text.encode("utf-8", errors="replace")[:room].decode("utf-8", "ignore")
            self._write_in_slices(text, min(room, len(text)))
            self._file.write(f"\n... output truncated at {self.cap // (1024 * 1024)} MB ...\n")
            self.written = self.cap
            self.truncated = True
            self.at_line_start = True
        self._file.flush()

    def _write_in_slices(self, text: str, end: int | None = None, step: int = 1 << 20) -> None:
        """One huge write would encode the whole message at once: slices bound the copy."""
        end = len(text) if end is None else end
        for start in range(0, end, step):
            self._file.write(text[start:min(start + step, end)])

    def write_text(self, text: str) -> None:
        """Write a block of text (a traceback) on lines of its own, past any cap."""
        self.write_line(text.rstrip("\n"))

    def write_line(self, line: str, echo: bool | None = None) -> None:
        """Write one whole line, starting a new one if the flow left one open."""
        prefix = "" if self.at_line_start else "\n"
        if echo if echo is not None else self.echo:
            _echo(prefix + line + "\n")
        self._file.write(prefix + line + "\n")
        self._file.flush()
        self.at_line_start = True

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _echo(text: str) -> None:
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, errors="replace").decode(encoding))
    stream.flush()
