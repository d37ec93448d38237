"""A papermill engine whose notebook keeps a bounded amount of output.

papermill's own engine stores every output message in the notebook: a flow printing
a gigabyte holds that gigabyte in memory and writes it into ``<flow>.ipynb`` at every
autosave. The captured text file is capped by ``OutputWriter``; here the notebook is
capped too, at a smaller size, since a notebook of many megabytes no longer opens in
Jupyter. Outputs past the cap still reach the text file (papermill logs them from the
value ``output`` returns); only storing them in the notebook stops.

Imports papermill: load it only on the path that runs a notebook.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.iorw import write_ipynb
from papermill.log import logger

from ductaflow.run_folder.files import unlinked

ENGINE_NAME = "ductaflow"

#: Most characters of output kept in a run's notebook; errors are always kept.
NOTEBOOK_CAP_CHARS = 10 * 1024 * 1024


def _size(content: dict[str, Any]) -> int:
    if "text" in content:
        return len(content["text"])
    data = content.get("data") or {}
    return sum(len(value) if isinstance(value, str) else len(str(value))
               for value in data.values())


class CappedNotebookClient(PapermillNotebookClient):
    """Stores outputs until ``NOTEBOOK_CAP_CHARS``, then one note, then nothing more."""

    output_file_name: str = "the execution output file"

    def __init__(self, nb_man: Any, cap: int = NOTEBOOK_CAP_CHARS, **kw: Any):
        super().__init__(nb_man, **kw)
        self.cap = cap
        self.kept = 0
        self.noted = False
        self.modules_of: tuple[str, str | None] | None = None  # (project root, runs folder)
        self.modules: list[str] | None = None

    def papermill_execute_cells(self) -> None:
        """papermill's, then (the kernel still alive, also after a failed cell) ask it
        which project modules the flow imported: they are code its record keeps."""
        super().papermill_execute_cells()
        if self.modules_of is not None:
            self.modules = self._imported(*self.modules_of)

    def _imported(self, root: str, runs: str | None) -> list[str] | None:
        expression = ("__import__('json').dumps(__import__('ductaflow.run_folder.fingerprints'"
                      f", fromlist=['_']).project_modules({root!r}, {runs!r}))")
        reply = self.wait_for_reply(self.kc.execute(
            "", silent=True, store_history=False, user_expressions={"modules": expression}))
        found = ((reply or {}).get("content") or {}).get("user_expressions", {}).get("modules")
        if not isinstance(found, dict) or found.get("status") != "ok":
            return None
        try:
            return json.loads(ast.literal_eval(found["data"]["text/plain"]))
        except (KeyError, ValueError, SyntaxError):
            return None

    def output(self, outs: list, msg: dict, display_id: str | None,
               cell_index: int) -> Any:
        """nbclient's, until the notebook holds ``cap`` characters of output; past it, one
        note, and the rest goes only to the output file (which has its own cap)."""
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        size = _size(msg["content"])
        if self.kept + size <= self.cap:
            self.kept += size
            return super().output(outs, msg, display_id, cell_index)
        content = msg["content"]
        stream = msg["msg_type"] == "stream"
        if not self.noted:
            self.noted = True
            head = content["text"][:self.cap - self.kept] if stream else ""
            outs.append(new_output("stream", name="stderr", text=head + (
                f"\n... output truncated in this notebook at {self.cap // (1024 * 1024)} MB;"
                f" {self.output_file_name} keeps more ...\n")))
        self.kept = self.cap
        # Returned, not stored: papermill still writes it to the text file.
        return new_output("stream", name=content["name"], text=content["text"]) if stream else None

    def log_output_message(self, output: Any) -> None:
        """papermill's, without ``"".join(text)`` on a str: for one 60 MB message that
        join built a list of 60 million characters (480 MB)."""
        if output.output_type != "stream":
            return super().log_output_message(output)
        sink = self.stdout_file if output.name == "stdout" else self.stderr_file
        if sink:
            text = output.text
            sink.write(text if isinstance(text, str) else "".join(text))
            sink.flush()
        return None


class CappedEngine(NBClientEngine):
    """papermill's nbclient engine, with ``CappedNotebookClient`` as its client."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None,
                                 start_timeout: int = 60, execution_timeout: Any = None,
                                 output_file_name: str | None = None,
                                 save_to: str | None = None,
                                 modules: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """``save_to``: where the notebook is written before the first cell and again if
        the run ends in an exception. papermill's own saving (with
        ``request_save_on_cell_execute``) writes and validates the whole notebook at
        every cell's start and end, a tenth of a trivial instance's time; the live
        view of a run is its output file, and papermill writes the notebook at the end
        and on a failed cell. ``modules``: ``{"of": (project root, runs folder)}``, to
        which the project modules the flow imported are added as ``"found"``."""
        kwargs.pop("input_path", None)
        kwargs.pop("timeout", None)
        client = CappedNotebookClient(
            nb_man, kernel_name=kernel_name, log=logger, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file, startup_timeout=start_timeout,
            timeout=execution_timeout, **kwargs)
        if output_file_name:
            client.output_file_name = output_file_name
        if modules is not None:
            client.modules_of = modules["of"]
        if save_to:
            # a run killed outright still leaves it
            write_ipynb(nb_man.nb, str(unlinked(Path(save_to))))
        try:
            result = client.execute()
        except BaseException:
            if save_to:
                write_ipynb(nb_man.nb, str(unlinked(Path(save_to))))  # with every output it got
            raise
        finally:
            if modules is not None:
                modules["found"] = client.modules
        if save_to:
            unlinked(Path(save_to))  # papermill writes it next: never where a flow's link points
        return result


papermill_engines.register(ENGINE_NAME, CappedEngine)
