# %% [markdown]
# # Chart
# Draws total demand per scenario over time.

# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("examples/config/flows/chart.json", "Chart")
vars().update(unpack_config(config, "Chart", locals()))

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

summary = pd.read_csv(summary_file, index_col="year")
ax = summary.plot(marker="o", title=title)
ax.set_ylabel("demand")
plt.savefig("demand.png", dpi=100, bbox_inches="tight")
print(f"chart of {len(summary.columns)} scenarios written to demand.png")
