# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Prep")

# %%
import os
import time
from pathlib import Path

if config.get("sleep"):
    time.sleep(config["sleep"])
if config.get("fail"):
    raise RuntimeError(f"prep failed for {config['scenario']}")
base = 1.0
if config.get("zones"):
    base = float(Path(config["zones"]).read_text(encoding="utf-8").strip())
value = base * (1 + config.get("growth", 0))
Path("out.csv").write_text(f"{config['scenario']},{value}\n", encoding="utf-8")
with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
    log.write(f"prep/{config['scenario']}\n")
print(f"prepared {config['scenario']} = {value}")
