"""Latency percentiles as every benchmark reports them: p50, p99 and p99.9 in microseconds."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram


def percentiles(samples: list[int]) -> tuple[float, float, float]:
    """p50, p99, p99.9 in microseconds of samples in nanoseconds (HdrHistogram, 3 digits)."""
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    for value in samples:
        histogram.record_value(max(1, value))
    return tuple(histogram.get_value_at_percentile(p) / 1_000 for p in (50, 99, 99.9))
