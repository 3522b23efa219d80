"""Latency samples as the benchmark reports them, for orderflow and its peer alike."""

from __future__ import annotations


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": at(50) * 1000,
        "p95_ms": at(95) * 1000,
        "p99_ms": at(99) * 1000,
        "max_ms": ordered[-1] * 1000,
    }
