"""The Dagster layer: thin definitions that call the domain packages.

Dependencies point one way: `defs` imports `market`, `archive`, ...; those never import `defs`
or Dagster.
"""
