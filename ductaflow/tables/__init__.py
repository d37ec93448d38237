"""Scenario tables: CSV files, Excel sheets and DataFrames read into ``Table`` and
``Row``, their cells typed and their ``{name}`` templates rendered.
"""
