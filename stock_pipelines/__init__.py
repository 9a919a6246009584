"""stock_pipelines: keep a KRX tick archive complete, as Dagster assets."""
