# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config, unpack_config

if not is_notebook_execution():
    config = load_cli_config("config/flows/nb_hello.json", "Hello")
vars().update(unpack_config(config, "Hello", locals(), verbose=False))

# %%
import sys

print(f"hello {name}")
print("to stderr", file=sys.stderr, flush=True)
with open("result.txt", "w", encoding="utf-8") as handle:
    handle.write(f"{name} {number * 2}\n")
if config.get("warn"):
    print("Warning: something looks off")
