"""Throw-away projects for ``benchmarks/run.py``: flows, scenario tables, runs folders.

Every project lives in a temporary folder and is built from scratch in each benchmark
run. "Everything up to date" is made without running a kernel: each instance gets
the bookkeeping ``ductaflow.execution.instance`` leaves after a successful run (its finished
record, written with ``ductaflow.run_folder.records``, and its saved config and output file).
``ductaflow conduct --accept`` cannot do this: it accepts finished runs only.
"""

from __future__ import annotations

import csv
import json
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HEADER = """\
# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "TITLE")
"""

TRIVIAL_FLOW = HEADER.replace("TITLE", "Trivial") + """
# %%
print(f"instance {config['n']}")
"""

PANDAS_FLOW = HEADER.replace("TITLE", "Pandas") + """
# %%
import pandas as pd

frame = pd.DataFrame({"n": range(100)})
print(f"instance {config['n']}: {frame['n'].sum()}")
"""

CPU_FLOW = HEADER.replace("TITLE", "CPU") + """
# %%
total = 0
for i in range(config["loops"]):
    total += i * i % 7
print(f"instance {config['n']}: {total}")
"""

NOOP_FLOW = HEADER.replace("TITLE", "No-op") + """
# %%
print(config)
"""

NOOP_BASE = {"iterations": 3, "output": "result.csv"}
NOOP_HEADERS = ["instance", "region", "year", "growth", "zones", "label", "weights"]
YEARS = (2030, 2035, 2040, 2045)

# The seed's headline: a build running three flows that pass small CSVs through ``../``.
PIPELINE_BUILD = HEADER.replace("TITLE", "Pipeline") + """
# %%
from ductaflow import run_notebook

steps = {
    "prep": {"growth": config["growth"]},
    "model": {"input": "../prep/prepared.csv", "factor": config["factor"]},
    "export": {"input": "../model/modelled.csv", "label": config["label"]},
}
for step, step_config in steps.items():
    run_notebook(f"flows/{step}.py", config=step_config, execution_dir=f"runs/{step}")
"""

PREP_FLOW = HEADER.replace("TITLE", "Prep") + """
# %%
import pandas as pd

zones = pd.DataFrame({"zone": range(20), "population": [1000 + 10 * z for z in range(20)]})
zones["population"] = zones["population"] * (1 + config["growth"])
zones.to_csv("prepared.csv", index=False)
print(f"prepared {len(zones)} zones")
"""

MODEL_FLOW = HEADER.replace("TITLE", "Model") + """
# %%
import pandas as pd

zones = pd.read_csv(config["input"])
zones["demand"] = zones["population"] * config["factor"]
zones.to_csv("modelled.csv", index=False)
print(f"total demand {zones['demand'].sum():.0f}")
"""

EXPORT_FLOW = HEADER.replace("TITLE", "Export") + """
# %%
import pandas as pd

zones = pd.read_csv(config["input"])
summary = zones[["population", "demand"]].sum().to_frame(config["label"]).T
summary.to_csv("summary.csv")
print(summary.to_string())
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, sheet: str, header: list[str], rows: list[list]) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    page = book.create_sheet(sheet)
    page.append(header)
    for row in rows:
        page.append(row)
    book.save(path)
    return path


# --- the no-op rerun ------------------------------------------------------------------------


def noop_rows(count: int) -> list[list]:
    """Rows of the no-op table: templates, ints, floats, a project file, a JSON list."""
    return [[
        "{region}_{year}", f"r{i // len(YEARS):05d}", YEARS[i % len(YEARS)],
        round(0.01 + (i % 7) * 0.001, 4), "data/zones.csv", "{region} in {year}",
        json.dumps([1, 2, i % 5]),
    ] for i in range(count)]


def noop_project(root: Path, rows: int, xlsx: bool = False) -> Path:
    """A project whose stage ``noop`` has ``rows`` instances; returns the table's path."""
    write(root / "flows/noop.py", NOOP_FLOW)
    write(root / "config/flows/noop.json", json.dumps(NOOP_BASE))
    write(root / "data/zones.csv", "zone,population\n1,1000\n2,2000\n")
    table = write_csv(root / "scenarios/noop.csv", NOOP_HEADERS, noop_rows(rows))
    if xlsx:
        table = write_xlsx(root / "scenarios/noop.xlsx", "noop", NOOP_HEADERS, noop_rows(rows))
    return table


# --- execution ------------------------------------------------------------------------------


def flow_project(root: Path, flow: str, count: int, **columns: object) -> Path:
    """``count`` instances ``t00``, ``t01``, ... of one flow in stage ``work``."""
    write(root / "flows/work.py", flow)
    names = list(columns)
    rows = [[f"t{n:02d}", n, *columns.values()] for n in range(count)]
    return write_csv(root / "scenarios/work.csv", ["instance", "n", *names], rows)


def headline_project(root: Path, scenarios: int = 50, variants: int = 3) -> Path:
    """``scenarios`` x ``variants`` builds, each running prep -> model -> export."""
    write(root / "builds/pipeline.py", PIPELINE_BUILD)
    write(root / "flows/prep.py", PREP_FLOW)
    write(root / "flows/model.py", MODEL_FLOW)
    write(root / "flows/export.py", EXPORT_FLOW)
    rows = [["{scenario}_{variant}", f"s{s:02d}", f"v{v}", round(0.01 * (s % 5), 3),
             1.0 + v / 10, "{scenario} {variant}"]
            for s in range(1, scenarios + 1) for v in range(1, variants + 1)]
    header = ["instance", "scenario", "variant", "growth", "factor", "label"]
    return write_csv(root / "scenarios/pipeline.csv", header, rows)


def notebook(flow: Path) -> Path:
    """The flow converted to ``.ipynb`` beside it, for the peers that run notebooks.

    Converted here, before any clock starts, so the peers are timed running it alone.
    """
    import jupytext

    path = flow.with_suffix(".ipynb")
    nb = jupytext.read(flow)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    jupytext.write(nb, path)
    return path


def instance_name(config: dict) -> str:
    """The instance a config belongs to: ``t00``, ``t01``, ... as in ``flow_project``."""
    return f"t{config['n']:02d}"


def papermill_script(flow: Path, configs: list[dict], runs: Path) -> str:
    """A Python program running ``flow`` once per config through papermill, serially.

    The flow is converted to ``.ipynb`` here (``notebook``), outside the timed child,
    so the loop is papermill alone.
    """
    return (
        "import os, papermill\n"
        f"configs = {configs!r}\n"
        f"runs = {str(runs)!r}\n"
        "for config in configs:\n"
        "    folder = os.path.join(runs, f\"t{config['n']:02d}\")\n"
        "    os.makedirs(folder, exist_ok=True)\n"
        f"    papermill.execute_notebook({str(notebook(flow))!r}, "
        "os.path.join(folder, 'out.ipynb'),\n"
        "        parameters={'config': config}, kernel_name='python3', progress_bar=False,\n"
        "        cwd=folder)\n"
    )


SNAKEFILE = """\
import json

CONFIGS = {configs!r}

rule all:
    input: expand("runs/{{instance}}/out.ipynb", instance=CONFIGS)

rule notebook:
    output: "runs/{{instance}}/out.ipynb"
    params: yaml=lambda wildcards: json.dumps({{"config": CONFIGS[wildcards.instance]}})
    shell: "{python} -m papermill {notebook} {{output:q}} -k python3 --no-progress-bar "
           "--cwd runs/{{wildcards.instance}} -y {{params.yaml:q}}"
"""


def snakemake_project(folder: Path, flow: Path, configs: list[dict], python: str) -> Path:
    """A Snakefile whose one rule runs the flow's notebook through the papermill CLI,
    one job per instance (the wildcard), each in its own ``runs/<instance>`` folder.

    Snakemake's way with notebooks made elsewhere: a shell rule, so every instance
    pays a papermill process of its own, as a Snakemake user's would. ``python`` runs
    papermill: the benchmark's own, not whichever ``papermill`` ``PATH`` finds.
    """
    text = SNAKEFILE.format(configs={instance_name(c): c for c in configs},
                            python=shlex.quote(python),
                            notebook=shlex.quote(str(notebook(flow))))
    return write(folder / "Snakefile", text)


def ploomber_project(folder: Path, flow: Path, configs: list[dict], processes: int) -> Path:
    """A ploomber ``pipeline-<processes>.yaml``: one NotebookRunner task per instance,
    ``runs/<instance>/out.ipynb`` its product, ``config`` its parameter.

    Written as JSON (which is YAML). ``extract_upstream``/``extract_product`` are off
    because ploomber otherwise wants ``upstream = None`` and ``product = None`` in the
    parameters cell; both executors papermill the notebook, the parallel one in
    ``processes`` worker processes. Those are spawned: forked ones (Linux's default)
    once hung for good, a worker polling a kernel that had exited.
    """
    source = str(notebook(flow))
    tasks = [{"source": source, "name": instance_name(c),
              "product": f"runs/{instance_name(c)}/out.ipynb", "params": {"config": c}}
             for c in configs]
    spec: dict = {"meta": {"extract_upstream": False, "extract_product": False},
                  "tasks": tasks}
    if processes > 1:
        spec["executor"] = {"dotted_path": "ploomber.executors.Parallel",
                            "processes": processes, "start_method": "spawn"}
    return write(folder / f"pipeline-{processes}.yaml", json.dumps(spec, indent=1))


# --- everything up to date ----------------------------------------------------------------


def write_records(root: Path, tables: list[Path],
                  progress: Callable[[int, int], None] | None = None) -> None:
    """What ``execution.instance.execute_instance`` writes after a green run, per instance.

    The finished record (through ``ductaflow.run_folder.records``), the saved config and the output
    file with its footer; upstream instances first, so consumers remember their run ids.
    """
    from ductaflow.planning.planner import plan
    from ductaflow.run_folder import fingerprints, provenance, records
    from ductaflow.run_folder.files import config_path, footer_line, output_path, write_config

    the_plan = plan([str(t) for t in tables], project_root=root)
    runs = the_plan.runs_dir
    code: dict[str, dict[str, str]] = {}
    inputs: dict[str, dict] = {}
    run_ids: dict[str, str] = {}
    now = records.utc_now()
    produced_by = provenance.collect(root)

    def one(instance) -> None:
        folder = runs / instance.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        config = {**instance.config, "_project_root": str(root)}
        write_config(config_path(folder, instance.flow_stem), config)
        footer = footer_line(instance.flow_stem, 0.01)
        write(output_path(folder, instance.flow_stem), f"{config}\n{footer}\n")
        record = records.new_record(
            stage=instance.stage, instance=instance.name, flow=instance.flow,
            config=instance.config, code=code[instance.flow],
            inputs={p: inputs[p] for p in instance.inputs},
            upstream={k: run_ids[k] for k in instance.depends_on}, status="success",
            started_at=now, ended_at=now, duration_s=0.01, run_id=run_ids[instance.key],
            flows=[], reason="new", provenance=produced_by, error="")
        records.write_record(folder, record)

    instances = [d.instance for d in the_plan.decisions]
    for instance in instances:
        code.setdefault(instance.flow, fingerprints.code_fingerprint(root, [instance.flow]))
        for path in instance.inputs:
            inputs.setdefault(path, fingerprints.file_fingerprint(root / path))
        run_ids[instance.key] = records.new_run_id()
    done = 0
    with ThreadPoolExecutor(32) as pool:  # write_record fsyncs: wait on the disk in parallel
        for _ in pool.map(one, instances):
            done += 1
            if progress and done % 5000 == 0:
                progress(done, len(instances))


def mark_some_failed(runs: Path) -> None:
    """1 in 100 instances red and 4 in 100 orange, as their records, output and the
    results CSV say: a report has something to put first."""
    import csv

    from ductaflow.run_folder import records
    from ductaflow.run_folder.files import RESULTS_CSV, footer_line, output_path

    marked: dict[str, tuple[str, str]] = {}
    folders = sorted(p for p in runs.glob("*/*") if (p / ".ductaflow").is_dir())
    for index, folder in enumerate(folders):
        light = "error" if index % 100 == 7 else "warning" if index % 25 == 3 else None
        if light is None:
            continue
        record = records.read_record(folder)
        stem = Path(record["flow"]).stem
        error = "ValueError: no demand for this zone" if light == "error" else ""
        text = ("Warning: capacity exceeded in 2040\n" if light == "warning" else
                "Traceback (most recent call last):\nValueError: no demand for this zone\n")
        output_path(folder, stem).write_text(
            text + footer_line(stem, 0.01, error or None) + "\n", encoding="utf-8")
        records.write_record(folder, {**record, "status": light, "error": error})
        marked[f"{folder.parent.name}/{folder.name}"] = (light, error)
    with open(runs / RESULTS_CSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        light, error = marked.get(f"{row['stage']}/{row['instance']}", (None, ""))
        if light:
            row.update(status=light, error=error,
                       action="failed" if light == "error" else row["action"])
    with open(runs / RESULTS_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
