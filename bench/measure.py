"""Timing: every contender runs ``n`` requests per round, all contenders once per round in a
rotating order, so that a noisy neighbour hurts all of them alike; the figure is the median
over rounds. Redis round trips per request come from the private server's INFO counters.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """The measurements of one contender on one workload."""

    name: str
    workload: str
    samples: list[float] = field(default_factory=list)  # seconds per request, one per round
    round_trips: list[float] = field(default_factory=list)
    commands: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median: how much rounds disagreed."""
        if len(self.samples) < 4:
            return (max(self.samples) - min(self.samples)) / 2 / self.median if len(self.samples) > 1 else 0.0
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / 2 / self.median

    @property
    def trips(self) -> float | None:
        return statistics.median(self.round_trips) if self.round_trips else None


class RedisCounters:
    """Round trips and commands seen by a redis-server between two snapshots."""

    def __init__(self, port: int) -> None:
        import redis

        self.client = redis.Redis(port=port)

    def snapshot(self) -> tuple[int, dict[str, int]]:
        info = self.client.info("everything")
        commands = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_") and isinstance(value, dict)
        }
        return int(info["total_reads_processed"]), commands

    @staticmethod
    def delta(
        before: tuple[int, dict[str, int]], after: tuple[int, dict[str, int]], n: int
    ) -> tuple[float, dict[str, float]]:
        # The second INFO is itself one read and one command: take it off.
        reads = after[0] - before[0] - 1
        commands = {}
        for name, calls in after[1].items():
            count = calls - before[1].get(name, 0) - (1 if name == "info" else 0)
            if count > 0:
                commands[name] = count / n
        return reads / n, commands

    def close(self) -> None:
        self.client.close()


def call(loop: asyncio.AbstractEventLoop, runner: Any, method: str, *args: Any) -> Any:
    result = getattr(runner, method)(*args)
    if asyncio.iscoroutine(result):
        return loop.run_until_complete(result)
    return result


def timed(loop: asyncio.AbstractEventLoop, runner: Any, n: int, workload: str) -> float:
    gc.collect()
    if runner.is_async:
        coroutine = runner.run(n, workload)
        start = time.perf_counter()
        loop.run_until_complete(coroutine)
    else:
        start = time.perf_counter()
        runner.run(n, workload)
    return (time.perf_counter() - start) / n


def run_rounds(
    loop: asyncio.AbstractEventLoop,
    runners: dict[str, Any],
    workloads: Iterable[str],
    *,
    n: int,
    rounds: int,
    counters: RedisCounters | None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, str], Figure]:
    """Run every (runner, workload) once per round, rotating the order each round."""
    pairs = [(name, workload) for workload in workloads for name in runners]
    figures = {pair: Figure(*pair) for pair in pairs}
    # Warm up: imports, connection pools, JIT-less but cache-full.
    for name, workload in pairs:
        timed(loop, runners[name], max(10, n // 10), workload)
    for index in range(rounds):
        shift = index % len(pairs) if pairs else 0
        for name, workload in pairs[shift:] + pairs[:shift]:
            runner = runners[name]
            before = counters.snapshot() if counters is not None and runner.redis else None
            figures[name, workload].samples.append(timed(loop, runner, n, workload))
            if before is not None and counters is not None:
                trips, commands = counters.delta(before, counters.snapshot(), n)
                figures[name, workload].round_trips.append(trips)
                figures[name, workload].commands = commands
        progress(f"round {index + 1}/{rounds}")
    return figures
