# %% tags=["parameters"]
config = {}

# %%
# ruff: noqa: E402 (a flow imports after its parameters cell)
import sys
from pathlib import Path

from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("config/flows/flow_ok.json", "A flow that works")
vars().update(unpack_config(config, "Ok", locals()))

# %%
print(f"growth for {scenario}: {growth}")  # noqa: F821 (names come from the config)
print(f"data_file is a Path: {isinstance(data_file, Path)}")  # noqa: F821
print(f"notebook: {is_notebook_execution()}")
print("to stderr", file=sys.stderr)
print("unicode: café ✅ 東京", flush=True)
print(f"isatty={sys.stdout.isatty()} encoding={sys.stdout.encoding} fileno={sys.stdout.fileno()}")
Path("result.txt").write_text("written where the flow runs\n", encoding="utf-8")
print("done")
