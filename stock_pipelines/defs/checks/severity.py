"""One check per rule with two thresholds: its severity follows the threshold the measure crossed."""

import dagster as dg


def graded(within_warn: bool, within_error: bool) -> tuple[bool, dg.AssetCheckSeverity]:
    """(passed, severity) of a measure against a WARN and a stricter-to-fail ERROR threshold:
    passes within the WARN threshold; past it fails with WARN (reported, not blocking) while
    within the ERROR threshold, and with ERROR (blocking) past both. A pass carries ERROR,
    Dagster's default, so a passing result reads the same as any other check's."""
    if within_warn:
        return True, dg.AssetCheckSeverity.ERROR
    return False, dg.AssetCheckSeverity.WARN if within_error else dg.AssetCheckSeverity.ERROR
