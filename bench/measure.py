"""Timing: every contender runs ``n`` requests per round, all contenders once per round, in
one order and then the reverse, so that a noisy neighbour hurts all of them alike. A figure is
the median over rounds; a ratio is the median of the ratios taken round by round (two figures
measured seconds apart share the machine's mood). Redis round trips per request come from the
private server's INFO counters.
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


def paired_ratio(anchor: Figure, ours: Figure) -> float:
    """How many times faster ``ours`` is than ``anchor``: the median of per-round ratios."""
    pairs = list(zip(anchor.samples, ours.samples, strict=False))
    if not pairs:
        return float("nan")
    return statistics.median(a / o for a, o in pairs)


class RedisCounters:
    """Round trips and commands seen by a redis-server between two snapshots."""

    def __init__(self, *ports: int) -> None:
        import redis

        self.clients = [redis.Redis(port=port) for port in ports]

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """Summed over every server (the masters of a cluster)."""
        reads = 0
        commands: dict[str, int] = {}
        for client in self.clients:
            info = client.info("everything")
            reads += int(info["total_reads_processed"])
            for key, value in info.items():
                if key.startswith("cmdstat_") and isinstance(value, dict):
                    name = key.removeprefix("cmdstat_")
                    commands[name] = commands.get(name, 0) + int(value["calls"])
        return reads, commands

    def delta(
        self, before: tuple[int, dict[str, int]], after: tuple[int, dict[str, int]], n: int
    ) -> tuple[float, dict[str, float]]:
        # The later INFO on each server is a read of its own; INFO commands are left out.
        reads = after[0] - before[0] - len(self.clients)
        commands = {}
        for name, calls in after[1].items():
            count = calls - before[1].get(name, 0)
            if name == "info":
                continue
            if count > 0:
                commands[name] = count / n
        return reads / n, commands

    def close(self) -> None:
        for client in self.clients:
            client.close()


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
    counters: RedisCounters | dict[str, RedisCounters] | None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, str], Figure]:
    """Run every (runner, workload) once per round, rotating the order each round."""
    pairs = [(name, workload) for workload in workloads for name in runners]
    figures = {pair: Figure(*pair) for pair in pairs}
    # Warm up: imports, connection pools, JIT-less but cache-full.
    for name, workload in pairs:
        timed(loop, runners[name], max(10, n // 10), workload)
    for index in range(rounds):
        # ABBA: forward, then backward, so that a drift in the machine's load during a round
        # hurts the first and the last contender alike.
        for name, workload in pairs if index % 2 == 0 else pairs[::-1]:
            runner = runners[name]
            counter = counters.get(name) if isinstance(counters, dict) else counters
            before = counter.snapshot() if counter is not None and runner.redis else None
            figures[name, workload].samples.append(timed(loop, runner, n, workload))
            if before is not None and counter is not None:
                trips, commands = counter.delta(before, counter.snapshot(), n)
                figures[name, workload].round_trips.append(trips)
                figures[name, workload].commands = commands
        progress(f"round {index + 1}/{rounds}")
    return figures
