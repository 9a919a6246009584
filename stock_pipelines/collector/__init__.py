"""The live collector: KIS H0STCNT0 WebSocket -> archive + heartbeats (docs/collector.md). No Dagster."""
