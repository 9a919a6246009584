"""Peak resident memory of each kind of process the soak runs, sampled from /proc (psutil).

A kind's figure is the largest sum, at one sample, of the RSS of its processes and their
descendants (a `fleet run` supervisor with its collectors, the daemon with its run workers)."""

from __future__ import annotations

import os

import psutil


class MemoryPeaks:
    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}

    def sample(self, pids_by_kind: dict[str, list[int]]) -> None:
        pids_by_kind = {**pids_by_kind, "harness": [os.getpid()]}
        for kind, pids in pids_by_kind.items():
            total = sum(_tree_rss(pid, include_children=kind != "harness") for pid in pids)
            if total > self.peaks.get(kind, 0):
                self.peaks[kind] = total


def _tree_rss(pid: int, include_children: bool) -> int:
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)] if include_children else [process]
    except psutil.Error:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total
