# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Model")

# %%
import os
from pathlib import Path

name, value = Path(config["input"]).read_text(encoding="utf-8").strip().split(",")
result = float(value) * config.get("factor", 1)
Path("result.txt").write_text(f"{result}\n", encoding="utf-8")
with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
    log.write(f"model/{name}\n")
if result > 100:
    print("Warning: result is large")
print(f"model {name}: {result}")
