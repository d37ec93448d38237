"""The floor of a no-op rerun: the least any tool must do to say "nothing changed".

    python benchmarks/floor.py PROJECT TABLE

Reads the table (the ``csv`` module; python-calamine for ``.xlsx``), builds each
row's config (base config, typed cells, ``{name}`` templates, the project file made
relative to the instance folder), loads each saved record and compares the configs.
Nothing else: no checks, no code or input fingerprints, no report. It knows the
benchmark's table (``projects.noop_rows``) and exits 1 if any config differs, so the
comparison is real work. Standard library only (plus python-calamine for Excel).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?")


def cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return value
    if NUMBER.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() else number
    return json.loads(value) if value[:1] == "[" else value


def rows(table: Path) -> tuple[list[str], list[list[object]]]:
    if table.suffix == ".xlsx":
        from python_calamine import CalamineWorkbook

        with CalamineWorkbook.from_path(str(table)) as book:
            grid = book.get_sheet_by_name(table.stem).to_python()
    else:
        with open(table, encoding="utf-8", newline="") as handle:
            grid = list(csv.reader(handle))
    return [str(h) for h in grid[0]], grid[1:]


def main(project: Path, table: Path) -> int:
    headers, body = rows(table)
    base = json.loads((project / "config/flows/noop.json").read_text(encoding="utf-8"))
    runs = f"{project}/runs/{table.stem}"
    same = 0
    for raw in body:
        values = dict(zip(headers, map(cell, raw), strict=True))
        config = dict(base)
        for key, value in values.items():
            if isinstance(value, str) and "{" in value:
                value = value.format_map(values)
            elif isinstance(value, str) and value.startswith("data/"):
                value = "../../../" + value
            config[key] = value
        name = config.pop("instance")
        with open(f"{runs}/{name}/.ductaflow/record.json", "rb") as handle:
            saved = json.loads(handle.read())["config"]
        same += saved == config
    return 0 if same == len(body) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
