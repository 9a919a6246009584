"""The JSONL tick archive: layout, record format, writer, reader, retention (no Dagster)."""
