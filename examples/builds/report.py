# %% [markdown]
# # Report build
# Runs two flows in order: summarise every scenario, then chart the summary.

# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, run_notebook, unpack_config

if not is_notebook_execution():
    config = load_cli_config("examples/config/builds/report.json", "Report build")
vars().update(unpack_config(config, "Report build", locals()))

# %%
# Paths in this instance's config are relative to its folder; the flows below run one
# level deeper (runs/<step>), so hand them paths from there.
from pathlib import Path

demand = [str(Path("../..") / f) for f in demand_files]
run_notebook("examples/flows/summarise.py", config={"demand_files": demand},
             execution_dir="runs/summarise")
run_notebook("examples/flows/chart.py",
             config={"summary_file": "../summarise/summary.csv", "title": title},
             execution_dir="runs/chart")
print("report ready: runs/chart/demand.png")
