"""Operations domain code (no Dagster): the heartbeat sensor's rules, recovery governance,
pre-flight checks, alerts and the status document. The Dagster layer calls into this."""
