"""From tables and the runs folder to a plan: instances, their order, and a run or
skip decision for each, with its reasons; and the cache of the last no-op plan.
"""
