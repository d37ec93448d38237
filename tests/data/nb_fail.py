# %% tags=["parameters"]
config = {}

# %%
print("before the failure")

# %%
raise ValueError("the model diverged")

# %%
print("never printed")
