# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Node")

# %% [markdown]
# A node of the random walk (test_faults_stale.py): its output is a pure function of
# its config, of ``VERSION`` (edited to change the code), of ``base`` (a project
# file) and of the outputs of its ``inputs``, so a test can recompute it.

# %%
import json
import os
from pathlib import Path

VERSION = 0
tag = config["tag"]
with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
    log.write(f"{tag}\n")
if config.get("fail"):
    raise RuntimeError(f"{tag} was told to fail")
base = Path(config["base"]).read_text(encoding="utf-8").strip() if config.get("base") else ""
parts = [Path(p).read_text(encoding="utf-8").strip() for p in config.get("inputs", [])]
text = f"{tag}={json.dumps(config['value'])}@v{VERSION}+{base}[{';'.join(parts)}]"
Path("out.txt").write_text(text + "\n", encoding="utf-8")
