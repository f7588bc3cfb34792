"""``python -m bench``: websession against the anchors, side by side, in one process run.

Phases: in-process request cycles (ASGI/WSGI callables, no HTTP), cookie signing, lazy loading
(round trips of a route that never touches the session), concurrent clients, a Redis Cluster
run, HTTP runs under uvicorn and gunicorn, and scale figures. Every
figure is a median over rounds in which all contenders take turns; ratios come from this run.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import ROOT
from .contenders import CONTENDERS, Contender, Env, websession_asgi
from .measure import Figure, RedisCounters, call, run_rounds
from .servers import Servers

PRESETS: dict[str, dict[str, Any]] = {
    # ~5 minutes on 2 cores.
    "default": dict(
        requests=800,
        rounds=9,
        sign_ops=10_000,
        http_seconds=2.0,
        http_rounds=3,
        levels=[1, 8, 64],
        http_warmup=1.0,
        concurrency_requests=4000,
        sizes=[1_000, 10_000, 100_000, 1_000_000],
        file_sizes=[1_000, 10_000, 100_000],
        growth_requests=1000,
        growth_rounds=4,
        memory_sessions=100_000,
        cluster=True,
    ),
    # ~30 seconds.
    "quick": dict(
        requests=300,
        rounds=3,
        sign_ops=5000,
        http_seconds=1.0,
        http_rounds=1,
        levels=[1, 8, 64],
        http_warmup=0.0,
        concurrency_requests=640,
        sizes=[1_000, 10_000],
        file_sizes=[1_000, 10_000],
        growth_requests=200,
        growth_rounds=3,
        memory_sessions=10_000,
        cluster=False,
    ),
    # A few seconds: checks that everything runs (tests/bench/test_smoke.py).
    "smoke": dict(
        requests=20,
        rounds=1,
        sign_ops=100,
        http_seconds=0.5,
        http_rounds=1,
        levels=[1, 8],
        http_warmup=0.0,
        http_workloads=["read"],
        http_levels=[],
        concurrency_requests=16,
        sizes=[100, 300],
        file_sizes=[100, 300],
        growth_requests=20,
        growth_rounds=1,
        memory_sessions=500,
        cluster=False,
    ),
    # What docs/performance.md shows: the default, with the file store grown to a million too.
    "full": dict(
        requests=1500,
        rounds=15,
        sign_ops=20_000,
        http_seconds=3.0,
        http_rounds=5,
        levels=[1, 8, 64],
        http_warmup=1.0,
        concurrency_requests=4000,
        sizes=[1_000, 10_000, 100_000, 1_000_000],
        file_sizes=[1_000, 10_000, 100_000, 1_000_000],
        growth_requests=1000,
        growth_rounds=7,
        memory_sessions=100_000,
        cluster=True,
    ),
}

PHASES = ("inprocess", "signing", "lazy", "concurrency", "cluster", "http", "growth", "memory")
SMOKE_HTTP = ["websession redis (Starlette)", "starsessions (redis)"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="preset", help="a ~30 s run")
    size.add_argument(
        "--smoke", action="store_const", const="smoke", dest="preset", help="a few seconds, to check it runs"
    )
    size.add_argument(
        "--full", action="store_const", const="full", dest="preset", help="what docs/performance.md shows"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="contenders whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=PHASES, help="leave a phase out (repeatable)"
    )
    parser.add_argument(
        "--phase", action="append", default=[], choices=PHASES, help="run only these phases (repeatable)"
    )
    parser.add_argument("--requests", type=int, help="requests per contender per round")
    parser.add_argument("--rounds", type=int, help="rounds (the figure is the median)")
    parser.add_argument("--http-seconds", type=float, help="seconds of load per HTTP run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the report as Markdown")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write the plot (PNG)")
    parser.add_argument(
        "--write-docs", action="store_true", help="update docs/performance.md and docs/performance.png"
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="profile one in-process contender with pyinstrument instead (with --workload)",
    )
    parser.add_argument("--workload", choices=("read", "write"), default="read", help="for --profile")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the bench and its servers to one CPU (and wrk to the others)",
    )
    parser.set_defaults(preset="default")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def conditions(preset: str) -> dict[str, Any]:
    def run(*command: str) -> str:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=10, cwd=ROOT
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    commit = run("git", "rev-parse", "--short", "HEAD")
    dirty = "+changes" if run("git", "status", "--porcelain", "--untracked-files=no") else ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + dirty,
        "preset": preset,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "redis-server": run("redis-server", "--version").split(" ")[2].removeprefix("v=")
        if run("redis-server", "--version")
        else "?",
    }


def pin() -> str | None:
    """Run the bench and every server it starts on one CPU, and wrk on the others.

    A request and its Redis round trip then hand the CPU back and forth on one core. Left to
    the scheduler, client and server land on different cores, and on a quiet machine each
    round trip also pays for waking an idle core: the same run varied by half from round to
    round, more than any difference it was meant to show.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    from . import http

    os.sched_setaffinity(0, {cpus[0]})
    http.LOAD_CPUS = set(cpus[1:])
    return f"bench and servers on CPU {cpus[0]}, wrk on CPU {', '.join(map(str, cpus[1:]))}"


def selected(only: list[str]) -> list[Contender]:
    if not only:
        return list(CONTENDERS)
    return [
        c for c in CONTENDERS if any(text.lower() in c.name.lower() for text in only) or c.group == "floor"
    ]


def build_runners(
    loop: asyncio.AbstractEventLoop, contenders: list[Contender], env: Env, skipped: dict[str, str]
) -> dict[str, Any]:
    runners = {}
    for contender in contenders:
        why = contender.available()
        if why is not None:
            skipped[contender.name] = why
            continue
        try:
            runner = contender.build(env)
            call(loop, runner, "prime")
        except Exception as exc:  # a contender that cannot start is reported, not fatal
            skipped[contender.name] = f"{type(exc).__name__}: {exc}"
            continue
        runners[contender.name] = runner
    return runners


def run_http(
    servers: Servers, settings: dict[str, Any], names: list[str], scratch: Path, results: dict[str, Any]
) -> None:
    from .http import APPS, AppServer, have_wrk, load

    counters = RedisCounters(servers.redis_port)
    log(f"HTTP: starting {len(names)} servers")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {
            name: pool.submit(AppServer, name, servers.redis_url if APPS[name][2] else None, scratch)
            for name in names
        }
    apps = {}
    for name, future in futures.items():
        try:
            apps[name] = future.result()
        except Exception as exc:
            results["meta"]["notes"][f"HTTP {name}"] = f"did not start: {exc}"
    seconds, connections = settings["http_seconds"], 8
    generator = "wrk" if have_wrk() and seconds >= 1 else "Python load generator"
    results["http_meta"] = (
        f"{generator} with {connections} connections, each keeping its own cookie, "
        f"{seconds:g} s per run, median of {settings['http_rounds']} rounds"
    )
    wanted = settings.get("http_workloads", ["read", "write"])
    workloads = {name: [w for w in wanted if w == "read" or APPS[name][2]] for name in apps}
    samples: dict[str, dict[str, list[tuple[float, float | None, int]]]] = {
        n: {w: [] for w in ws} for n, ws in workloads.items()
    }
    try:
        for app in apps.values():  # warm up: imports, pools
            if settings["http_warmup"]:
                load(app.url("/read"), settings["http_warmup"], connections)
        for index in range(settings["http_rounds"]):
            order = list(apps)
            order = order[index % len(order) :] + order[: index % len(order)]
            for name in order:
                for workload in workloads[name]:
                    before = counters.snapshot()
                    result = load(apps[name].url("/" + workload), seconds, connections)
                    trips = None
                    if APPS[name][2] and result.requests:
                        trips = counters.delta(before, counters.snapshot(), result.requests)[0]
                    samples[name][workload].append((result.rate, trips, result.errors))
            log(f"HTTP round {index + 1}/{settings['http_rounds']}")
        http: dict[str, dict[str, dict[str, Any]]] = {}
        for name, by in samples.items():
            http[name] = {}
            for workload, points in by.items():
                rates = [p[0] for p in points]
                counted = [p[1] for p in points if p[1] is not None]
                median = statistics.median(rates)
                http[name][workload] = {
                    "rate": median,
                    "rates": rates,
                    "spread": (max(rates) - min(rates)) / 2 / median if median else 0.0,
                    "trips": statistics.median(counted) if counted else None,
                    "errors": sum(p[2] for p in points),
                }
        results["http"] = http
        levels = settings.get("http_levels", settings["levels"])
        pair = [n for n in ("websession redis (Starlette)", "starsessions (redis)") if n in apps]
        if pair and levels:
            table: dict[str, dict[int, list[float]]] = {n: {c: [] for c in levels} for n in pair}
            for _ in range(max(1, settings["http_rounds"] - 1)):
                for clients in levels:
                    for name in pair:
                        table[name][clients].append(load(apps[name].url("/read"), seconds, clients).rate)
            results.setdefault("concurrency", {})[
                "HTTP (uvicorn, 1 worker; each connection its own cookie)"
            ] = {n: {c: statistics.median(v) for c, v in by.items()} for n, by in table.items()}
    finally:
        for app in apps.values():
            app.stop()
        counters.close()


def profile(name: str, workload: str, requests: int) -> int:
    """Print where one contender's request cycle spends its time (pyinstrument)."""
    from pyinstrument import Profiler

    contender = next((c for c in CONTENDERS if c.name == name), None)
    if contender is None:
        raise SystemExit(f"no contender named {name!r}; one of: {', '.join(c.name for c in CONTENDERS)}")
    loop = asyncio.new_event_loop()
    with Servers() as servers, tempfile.TemporaryDirectory(prefix="websession-bench-") as scratch:
        runner = contender.build(Env(servers, Path(scratch)))
        call(loop, runner, "prime")
        call(loop, runner, "run", max(100, requests // 5), workload)
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        call(loop, runner, "run", requests, workload)
        profiler.stop()
        call(loop, runner, "close")
    loop.close()
    print(f"{name}, {workload}, {requests} requests:")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        return profile(args.profile, args.workload, args.requests or 5000)
    settings = dict(PRESETS[args.preset])
    for key in ("requests", "rounds", "http_seconds"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    phases = [p for p in (args.phase or PHASES) if p not in args.skip]
    if not settings["cluster"] and "cluster" in phases and not args.phase:
        phases.remove("cluster")
    pinned = pin() if args.pin else None
    started = time.perf_counter()
    spent: dict[str, float] = {}
    current = ["setup", started]

    def mark(phase: str) -> None:
        now = time.perf_counter()
        spent[str(current[0])] = spent.get(str(current[0]), 0.0) + now - float(current[1])
        current[:] = [phase, now]

    results: dict[str, Any] = {"meta": conditions(args.preset)}
    results["meta"]["pinned"] = pinned or "no"
    notes: dict[str, str] = {}
    results["meta"]["notes"] = notes
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with Servers() as servers, tempfile.TemporaryDirectory(prefix="websession-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        env = Env(servers, scratch, notes=notes)
        counters = RedisCounters(servers.redis_port)
        runners: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        anchors = {c.name: c.anchor for c in CONTENDERS}
        try:
            if "inprocess" in phases or "concurrency" in phases:
                runners = build_runners(loop, selected(args.only), env, skipped)
            mark("inprocess")
            if "inprocess" in phases:
                each = f"{settings['requests']} requests x {settings['rounds']} rounds"
                log(f"in-process: {len(runners)} contenders, {each}")
                results["inprocess"] = run_rounds(
                    loop,
                    runners,
                    ("read", "write"),
                    n=settings["requests"],
                    rounds=settings["rounds"],
                    counters=counters,
                    progress=log,
                )
            mark("signing")
            if "signing" in phases:
                from .signing import SIGNERS

                log("cookie signing")
                signers = {name: cls() for name, cls in SIGNERS.items()}
                for signer in signers.values():
                    signer.prime()
                results["signing"] = run_rounds(
                    loop,
                    signers,
                    ("data", "id"),
                    n=settings["sign_ops"],
                    rounds=settings["rounds"],
                    counters=None,
                    progress=log,
                )
            mark("lazy")
            if "lazy" in phases:
                from .lazy import lazy_loading

                log("lazy loading")
                try:
                    results["lazy"] = lazy_loading(
                        loop,
                        env,
                        counters,
                        n=settings["requests"],
                        rounds=max(1, settings["rounds"] // 3),
                        progress=log,
                    )
                except Exception as exc:  # e.g. Flask missing: reported, not fatal
                    notes["lazy loading"] = f"not run: {type(exc).__name__}: {exc}"
            mark("concurrency")
            if "concurrency" in phases:
                from .scale import concurrency

                pair = {n: runners[n] for n in ("websession redis", "starsessions (redis)") if n in runners}
                if pair:
                    log(f"concurrency {settings['levels']}")
                    results.setdefault("concurrency", {})[
                        "In process (one event loop, each client its own cookie)"
                    ] = concurrency(
                        loop,
                        pair,
                        settings["levels"],
                        n=settings["concurrency_requests"],
                        rounds=max(1, settings["rounds"] // 2),
                    )
            mark("cluster")
            if "cluster" in phases:
                log("Redis Cluster")
                try:
                    cluster_runners = {
                        "websession redis": websession_asgi("redis")(env),
                        "websession redis cluster": websession_asgi("redis-cluster")(env),
                    }
                    for runner in cluster_runners.values():
                        call(loop, runner, "prime")
                    cluster_counters = {
                        "websession redis": counters,
                        "websession redis cluster": RedisCounters(*servers.cluster_ports),
                    }
                    results["cluster"] = run_rounds(
                        loop,
                        cluster_runners,
                        ("read", "write"),
                        n=settings["requests"],
                        rounds=settings["rounds"],
                        counters=cluster_counters,
                    )
                    for runner in cluster_runners.values():
                        call(loop, runner, "close")
                except Exception as exc:
                    notes["Redis Cluster"] = f"not run: {type(exc).__name__}: {exc}"
            for runner in runners.values():
                call(loop, runner, "close")
            mark("http")
            if "http" in phases:
                from .http import APPS

                names = SMOKE_HTTP if args.preset == "smoke" else list(APPS)
                if args.only:
                    names = [n for n in names if any(t.lower() in n.lower() for t in args.only)]
                run_http(servers, settings, names, scratch, results)
            mark("growth")
            if "growth" in phases:
                from .scale import growth

                results["growth"] = {}
                for kind in ("redis", "sqlite", "file"):
                    sizes = settings["file_sizes"] if kind == "file" else settings["sizes"]
                    try:
                        results["growth"][kind] = growth(
                            kind,
                            sizes,
                            env,
                            n=settings["growth_requests"],
                            rounds=settings["growth_rounds"],
                            progress=log,
                        )
                    except Exception as exc:
                        notes[f"growth {kind}"] = f"not run: {type(exc).__name__}: {exc}"
            mark("memory")
            if "memory" in phases:
                from .scale import memory_per_session

                results["memory"] = memory_per_session(settings["memory_sessions"])
        finally:
            counters.close()
            loop.close()
    for name, why in skipped.items():
        notes[f"skipped {name}"] = why
    results["meta"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    mark("end")
    results["meta"]["wall time"] = (
        f"{time.perf_counter() - started:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f}" for name, seconds in spent.items() if seconds >= 0.5)
        + ")"
    )
    from .report import plot, render

    text = render(results, anchors)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(to_json(results), indent=1))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.plot:
        plot(results, args.plot)
    if args.write_docs:
        write_docs(text, results)
    return 0


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Figure):
            return {
                "name": value.name,
                "workload": value.workload,
                "median_s": value.median,
                "samples_s": value.samples,
                "round_trips": value.trips,
                "commands": value.commands,
            }
        if isinstance(value, dict):
            return {(" / ".join(k) if isinstance(k, tuple) else str(k)): convert(v) for k, v in value.items()}
        if hasattr(value, "points"):
            return {"store": value.store, "points": {str(k): v for k, v in value.points.items()}}
        return value

    return convert(results)


START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def _between(path: Path, start: str, end: str, text: str) -> None:
    content = path.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{path} has no {start} ... {end} markers to write between")
    before, _, rest = content.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{start}\n{text}\n{end}{after}")


def write_docs(text: str, results: dict[str, Any]) -> None:
    """The report into docs/performance.md, the plot beside it, the targets into README.md."""
    from .report import TARGET_HEADERS, markdown_table, plot, targets

    docs = ROOT / "docs"
    _between(docs / "performance.md", START, END, text)
    plot(results, docs / "performance.png")
    meta = results["meta"]
    summary = (
        f"Ratios from one run ({meta['date']}, commit {meta['commit']}, {meta['cpus']} cores, "
        f"load average {meta['load average at start']} at the start):\n\n"
        + markdown_table(TARGET_HEADERS, [t.row() for t in targets(results)])
    )
    _between(ROOT / "README.md", "<!-- bench:readme:start -->", "<!-- bench:readme:end -->", summary)
    log("updated docs/performance.md, docs/performance.png and the README's Performance section")


if __name__ == "__main__":
    raise SystemExit(main())
