# %% [markdown]
# # Demand model
# Turns prepared population into demand, and warns where it exceeds capacity.

# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("examples/config/flows/model.json", "Demand model")
vars().update(unpack_config(config, "Demand model", locals()))

# %%
import pandas as pd

data = pd.read_csv(prepared_file)
data["demand"] = data["population"] * data["demand_per_capita"] * (1 + efficiency_gain) ** -1
data["utilisation"] = data["demand"] / data["capacity"]
data.to_csv("demand.csv", index=False)

over = data[data["utilisation"] > 1.0]
for row in over.drop_duplicates("region").itertuples():
    print(f"Warning: {row.region} exceeds capacity from {row.year} ({row.utilisation:.0%})")
final = data[data["year"] == data["year"].max()]
print(f"{scenario}: total demand in {data['year'].max()}: {final['demand'].sum():,.0f}")

# %%
# The headline numbers, for the results tables (`ductaflow results model`).
import ductaflow

ductaflow.record(total_demand=round(final["demand"].sum()),
                 peak_utilisation=round(data["utilisation"].max(), 3),
                 regions_over_capacity=over["region"].nunique())
