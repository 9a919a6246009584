"""The gap calculator: downtime, silence and sequence gaps clipped to KRX trading time (no Dagster)."""

from stock_pipelines.gaps.downtime import downtime_gaps
from stock_pipelines.gaps.model import Gap, GapKind, clipped
from stock_pipelines.gaps.sequence import sequence_gap_frame, sequence_gaps
from stock_pipelines.gaps.silence import silence_gaps
from stock_pipelines.gaps.summary import gaps_frame, minutes_lost

__all__ = [
    "Gap",
    "GapKind",
    "clipped",
    "downtime_gaps",
    "gaps_frame",
    "minutes_lost",
    "sequence_gap_frame",
    "sequence_gaps",
    "silence_gaps",
]
