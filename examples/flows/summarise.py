# %% [markdown]
# # Summarise scenarios
# Collects every scenario's demand into one table.

# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("examples/config/flows/summarise.json", "Summarise")
vars().update(unpack_config(config, "Summarise", locals()))

# %%
from pathlib import Path

import pandas as pd

frames = [pd.read_csv(Path(f)) for f in demand_files]
summary = (pd.concat(frames).groupby(["scenario", "year"], as_index=False)["demand"].sum()
           .pivot(index="year", columns="scenario", values="demand"))
summary.to_csv("summary.csv")
print(summary.round(0).to_string())
