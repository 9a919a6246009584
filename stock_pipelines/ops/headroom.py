"""Memory and CPU headroom for the pre-flight (psutil): is there room for a trading day?

A collector fleet holds every session's buffers in memory and parses every frame on the CPU; a
machine already short of either before the open loses trades in the session.
- memory: available memory (what can be used without swapping) at least `min_available_mb`;
- CPU: the 1-minute load average per logical CPU at most `max_load_per_cpu`.
"""

from __future__ import annotations

from collections.abc import Mapping

import psutil

ENV_MIN_AVAILABLE_MB = "STOCK_PIPELINES_MIN_AVAILABLE_MEMORY_MB"
ENV_MAX_LOAD_PER_CPU = "STOCK_PIPELINES_MAX_LOAD_PER_CPU"
DEFAULT_MIN_AVAILABLE_MB = 512.0
DEFAULT_MAX_LOAD_PER_CPU = 4.0


def thresholds(environ: Mapping[str, str]) -> tuple[float, float]:
    """(minimum available MB, maximum load per CPU) from the deployment's settings."""
    values = []
    for var, default in ((ENV_MIN_AVAILABLE_MB, DEFAULT_MIN_AVAILABLE_MB), (ENV_MAX_LOAD_PER_CPU, DEFAULT_MAX_LOAD_PER_CPU)):
        try:
            value = float(environ.get(var, default))
        except ValueError:
            raise ValueError(f"{var} must be a number, not {environ.get(var)!r}") from None
        if value < 0:
            raise ValueError(f"{var} must be >= 0")
        values.append(value)
    return values[0], values[1]


def check_memory(min_available_mb: float) -> str:
    memory = psutil.virtual_memory()
    available = memory.available / 2**20
    if available < min_available_mb:
        raise MemoryError(
            f"{available:.0f} MB available of {memory.total / 2**20:.0f} MB, need {min_available_mb:g} MB"
        )
    return f"{available:.0f} MB available of {memory.total / 2**20:.0f} MB"


def check_cpu(max_load_per_cpu: float) -> str:
    cpus = psutil.cpu_count() or 1
    per_cpu = psutil.getloadavg()[0] / cpus
    if per_cpu > max_load_per_cpu:
        raise OSError(f"load {per_cpu:.2f} per CPU ({cpus} CPUs) over the limit {max_load_per_cpu:g}")
    return f"load {per_cpu:.2f} per CPU ({cpus} CPUs)"
