# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Data prep
# Reads the shipped regional data and projects population for one scenario.

# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("examples/config/flows/prep.json", "Data prep")
vars().update(unpack_config(config, "Data prep", locals()))

# %%
import pandas as pd

regions = pd.read_csv(regions_file)
years = list(range(start_year, end_year + 1, step))
rows = []
for year in years:
    factor = (1 + growth) ** (year - start_year)
    for r in regions.itertuples():
        rows.append({"scenario": scenario, "region": r.region, "year": year,
                     "population": round(r.population * factor),
                     "demand_per_capita": r.demand_per_capita, "capacity": r.capacity})
prepared = pd.DataFrame(rows)
prepared.to_csv("prepared.csv", index=False)
print(f"{scenario}: {len(regions)} regions x {len(years)} years, growth {growth:.1%}")
print(prepared.groupby("year")["population"].sum().to_string())
