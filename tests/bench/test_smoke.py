"""`python -m bench --smoke` runs every phase on a tiny setting and reports what it measured.

Benchmarks are not tests: nothing here looks at how fast anything was, only that each phase
ran, produced figures, and counted the Redis round trips it should.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object], pathlib.Path]:
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--json",
            str(out / "r.json"),
            "--plot",
            str(out / "r.png"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads((out / "r.json").read_text()), out


def test_every_phase_reports(smoke: tuple[str, dict[str, object], pathlib.Path]) -> None:
    text, results, _ = smoke
    for heading in (
        "In-process request cycles, read-mostly",
        "In-process request cycles, write-every-request",
        "Cookie sign + verify",
        "Lazy loading: a route that never touches the session",
        "HTTP, one worker",
        "Throughput with concurrent clients",
        "Cost per request as stored sessions grow",
        "Memory store:",
        "Targets (issue 4)",
    ):
        assert heading in text
    assert {"meta", "inprocess", "signing", "lazy", "http", "concurrency", "growth", "memory"} <= set(results)


def test_round_trips_are_the_ones_each_library_makes(
    smoke: tuple[str, dict[str, object], pathlib.Path],
) -> None:
    _, results, _ = smoke
    figures = results["inprocess"]
    assert isinstance(figures, dict)

    def trips(name: str, workload: str) -> float:
        return float(figures[f"{name} / {workload}"]["round_trips"])

    assert trips("redis-py asyncio floor", "read") == pytest.approx(1.0, abs=0.05)
    assert trips("redis-py asyncio floor", "write") == pytest.approx(2.0, abs=0.05)
    assert trips("websession redis", "read") == pytest.approx(1.0, abs=0.05)  # GETEX only
    assert trips("websession redis", "write") == pytest.approx(2.0, abs=0.05)  # GETEX + the CAS script
    assert trips("starsessions (redis)", "read") == pytest.approx(2.0, abs=0.05)  # GET + SET even unchanged
    assert figures["websession redis / read"]["commands"] == {"getex": 1.0}
    # Telemetry watches the commands; it sends none of its own.
    assert figures["websession redis, telemetry on / read"]["commands"] == {"getex": 1.0}
    assert trips("websession redis, telemetry on", "write") == pytest.approx(2.0, abs=0.05)


def test_lazy_loading_costs_no_round_trip_for_a_route_that_never_touches_the_session(
    smoke: tuple[str, dict[str, object], pathlib.Path],
) -> None:
    _, results, _ = smoke
    figures = results["lazy"]
    assert isinstance(figures, dict)

    def trips(name: str, workload: str) -> float:
        return float(figures[f"{name} / {workload}"]["round_trips"])

    for framework in ("websession redis, ASGI", "websession Flask redis"):
        eager, lazy = f"{framework} (eager, the default)", f"{framework}, lazy=True"
        assert trips(lazy, "static") == pytest.approx(0.0, abs=0.05)  # every browser has a cookie
        assert trips(lazy, "read") == pytest.approx(1.0, abs=0.05)
        assert trips(eager, "static") == pytest.approx(1.0, abs=0.05)  # eager reads regardless
        assert figures[f"{lazy} / read"]["commands"] == {"getex": 1.0}


def test_every_contender_that_can_run_here_has_figures(
    smoke: tuple[str, dict[str, object], pathlib.Path],
) -> None:
    _, results, _ = smoke
    figures = results["inprocess"]
    assert isinstance(figures, dict)
    for name in (
        "websession cookie",
        "websession memory",
        "websession file",
        "websession sqlite",
        "websession redis",
        "websession redis hash",
        "websession redis, telemetry on",
        "websession Flask redis",
        "starsessions (redis)",
        "aiohttp-session (redis)",
        "Flask-Session (redis)",
        "Starlette SessionMiddleware (cookie)",
    ):
        for workload in ("read", "write"):
            samples = figures[f"{name} / {workload}"]["samples_s"]
            assert samples and all(sample > 0 for sample in samples), name
    meta = results["meta"]
    assert isinstance(meta, dict)
    skipped = {note for note in meta["notes"] if note.startswith("skipped ")}
    allowed = (
        set() if importlib.util.find_spec("websession.stores.memcache") else {"skipped websession memcache"}
    )
    assert skipped <= allowed


def test_the_plot_is_a_png(smoke: tuple[str, dict[str, object], pathlib.Path]) -> None:
    _, _, out = smoke
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
