"""What the UI's asset catalog shows about each asset: its kinds (storage and computation, shown as
icons), its owner and the layer it belongs to (a tag to filter by)."""

OWNER = "team:market-data"
LAYER_TAG = "stock_pipelines/layer"

TICKS = "ticks"  # built from the collectors' archive
RECOVERY = "recovery"  # gaps and the bars that fill them
QUALITY = "quality"  # the day's verdict


def catalog(layer: str, *kinds: str) -> dict:
    """`kinds`, `owners` and `tags` arguments for an asset or an asset output of `layer`; the
    Parquet lake and polars are every materialized asset's kinds unless others are given."""
    return {"kinds": set(kinds or ("parquet", "polars")), "owners": [OWNER], "tags": {LAYER_TAG: layer}}
