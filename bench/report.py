"""Tables, targets, JSON and the plot, all from one run's results."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contenders import FLOOR, FLOORS, SYNC_FLOOR
from .measure import Figure, paired_ratio

WORKLOADS = {
    "read": "read-mostly (session read, not changed)",
    "write": "write-every-request (one key changed)",
}
FLOOR_OPS = {"read": "GETEX", "write": "GET+SET"}
LAZY_WORKLOADS = {"static": "static (never touches the session)", "read": "reads the session"}


def us(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1e6:,.1f}"


def ratio(anchor: Figure | None, ours: Figure | None) -> str:
    """Speed of ``ours`` relative to ``anchor`` (above 1: faster), paired round by round."""
    if anchor is None or ours is None or not anchor.samples or not ours.samples:
        return "—"
    return f"{paired_ratio(anchor, ours):.2f}x"


def _row_name(figure: Figure) -> str:
    if figure.name in (FLOOR, SYNC_FLOOR):
        return f"{figure.name}: {FLOOR_OPS[figure.workload]}"
    return figure.name


def _trips(figure: Figure) -> str:
    if figure.trips is None:
        return ""
    mix = ", ".join(f"{name} {count:.2g}" for name, count in sorted(figure.commands.items()))
    return f"{figure.trips:.2f} ({mix})" if mix else f"{figure.trips:.2f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def inprocess_rows(
    figures: dict[tuple[str, str], Figure], anchors: dict[str, dict[str, str]], workload: str
) -> list[list[str]]:
    rows = []
    for (name, load), figure in figures.items():
        if load != workload:
            continue
        anchor_name = anchors.get(name, {}).get(workload)
        anchor = figures.get((anchor_name, workload)) if anchor_name else None
        floor_name = FLOORS.get(name, {}).get(workload)
        floor = figures.get((floor_name, workload)) if floor_name else None
        rows.append(
            [
                _row_name(figure),
                us(figure.median),
                f"±{figure.spread * 100:.0f}%",
                f"{1 / figure.median:,.0f}" if figure.median == figure.median else "—",
                f"{ratio(anchor, figure)} vs {anchor_name}" if anchor else "",
                f"{ratio(floor, figure)}" if floor else "",
                _trips(figure),
            ]
        )
    return rows


INPROCESS_HEADERS = [
    "contender",
    "µs/request",
    "spread",
    "req/s",
    "speed vs anchor",
    "vs floor",
    "Redis round trips/request",
]


@dataclass
class Target:
    what: str
    value: float | None
    goal: float
    detail: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None or math.isnan(self.value) else self.value >= self.goal

    def row(self) -> list[str]:
        value = "not measured" if self.value is None or math.isnan(self.value) else f"{self.value:.2f}x"
        verdict = {True: "met", False: "NOT met", None: "—"}[self.met]
        return [self.what, f">= {self.goal:.2f}x", value, verdict, self.detail]


def http_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Throughput of ``ours`` over ``theirs``: the median of per-round ratios."""
    pairs = list(zip(ours.get("rates", [ours["rate"]]), theirs.get("rates", [theirs["rate"]]), strict=False))
    return statistics.median(o / t for o, t in pairs if t) if pairs else float("nan")


def targets(results: dict[str, Any]) -> list[Target]:
    """The speed targets of issue 4, as ratios taken in this run."""
    figures: dict[tuple[str, str], Figure] = results.get("inprocess", {})

    def speed(anchor: tuple[str, str], ours: tuple[str, str]) -> tuple[float | None, str]:
        a, o = figures.get(anchor), figures.get(ours)
        if a is None or o is None or not a.samples or not o.samples:
            return None, "not run"
        return paired_ratio(a, o), f"{us(o.median)} µs vs {us(a.median)} µs (medians)"

    checks: list[tuple[str, float, Callable[[], tuple[float | None, str]]]] = [
        (
            "unchanged session on Redis vs the GETEX floor",
            0.90,
            lambda: speed((FLOOR, "read"), ("websession redis", "read")),
        ),
        (
            "unchanged session on Redis vs starsessions",
            2.5,
            lambda: speed(("starsessions (redis)", "read"), ("websession redis", "read")),
        ),
        (
            "changed session on Redis vs the GET+SET floor",
            0.85,
            lambda: speed((FLOOR, "write"), ("websession redis", "write")),
        ),
        (
            "changed session on Redis vs starsessions",
            1.5,
            lambda: speed(("starsessions (redis)", "write"), ("websession redis", "write")),
        ),
        (
            "Flask on Redis vs Flask-Session, read-mostly",
            1.8,
            lambda: speed(("Flask-Session (redis)", "read"), ("websession Flask redis", "read")),
        ),
        (
            "Flask on Redis vs Flask-Session, write",
            1.8,
            lambda: speed(("Flask-Session (redis)", "write"), ("websession Flask redis", "write")),
        ),
        (
            "cookie store vs Starlette SessionMiddleware, read-mostly",
            1.5,
            lambda: speed(("Starlette SessionMiddleware (cookie)", "read"), ("websession cookie", "read")),
        ),
        (
            "cookie store vs Starlette SessionMiddleware, write",
            1.5,
            lambda: speed(("Starlette SessionMiddleware (cookie)", "write"), ("websession cookie", "write")),
        ),
    ]
    out = []
    for what, goal, compute in checks:
        value, detail = compute()
        out.append(Target(what, value, goal, detail))
    signing: dict[tuple[str, str], Figure] = results.get("signing", {})
    ours = signing.get(("websession Cookie sign+unsign", "data"))
    theirs = signing.get(("itsdangerous TimestampSigner (Starlette)", "data"))
    if ours and theirs:
        out.append(
            Target(
                "cookie sign+verify vs itsdangerous",
                paired_ratio(theirs, ours),
                1.8,
                f"{us(ours.median)} µs vs {us(theirs.median)} µs (medians)",
            )
        )
    else:
        out.append(Target("cookie sign+verify vs itsdangerous", None, 1.8, "not run"))
    http = results.get("http", {})
    mine, star = (
        http.get("websession redis (Starlette)", {}).get("read"),
        http.get("starsessions (redis)", {}).get("read"),
    )
    if mine and star:
        out.append(
            Target(
                "HTTP Starlette+Redis read-mostly vs starsessions",
                http_ratio(mine, star),
                2.0,
                f"{mine['rate']:,.0f} vs {star['rate']:,.0f} req/s",
            )
        )
    else:
        out.append(Target("HTTP Starlette+Redis read-mostly vs starsessions", None, 2.0, "not run"))
    return out


TARGET_HEADERS = ["target", "goal", "measured", "", "detail"]


def render(results: dict[str, Any], anchors: dict[str, dict[str, str]]) -> str:
    """The whole report as Markdown (also what the terminal shows)."""
    parts = []
    meta = results["meta"]
    parts.append("Conditions: " + "; ".join(f"{k} {v}" for k, v in meta.items() if k not in ("notes",)))
    for note, value in meta.get("notes", {}).items():
        parts.append(f"- {note}: {value}")
    figures = results.get("inprocess")
    if figures:
        for workload, title in WORKLOADS.items():
            parts.append(f"\n### In-process request cycles, {title}\n")
            parts.append(markdown_table(INPROCESS_HEADERS, inprocess_rows(figures, anchors, workload)))
    signing = results.get("signing")
    if signing:
        parts.append("\n### Cookie sign + verify\n")
        rows = []
        from .signing import ANCHOR

        for (name, workload), figure in signing.items():
            anchor = signing.get((ANCHOR, workload))
            rows.append(
                [
                    name,
                    workload,
                    us(figure.median),
                    f"±{figure.spread * 100:.0f}%",
                    ratio(anchor, figure) if anchor and name != ANCHOR else "",
                ]
            )
        parts.append(
            markdown_table(["signer", "value", "µs/op", "spread", "vs Starlette's itsdangerous"], rows)
        )
    http = results.get("http")
    if http:
        parts.append(f"\n### HTTP, one worker, {results['http_meta']}\n")
        from .http import APPS

        rows = []
        for name, by_workload in http.items():
            anchor = APPS[name][3]
            for workload, point in by_workload.items():
                theirs = http.get(anchor, {}).get(workload) if anchor else None
                rows.append(
                    [
                        name,
                        workload,
                        f"{point['rate']:,.0f}",
                        f"±{point['spread'] * 100:.0f}%",
                        f"{http_ratio(point, theirs):.2f}x vs {anchor}" if theirs else "",
                        "" if point.get("trips") is None else f"{point['trips']:.2f}",
                        str(point.get("errors", 0)),
                    ]
                )
        parts.append(
            markdown_table(
                ["app", "workload", "req/s", "spread", "vs anchor", "Redis round trips/request", "errors"],
                rows,
            )
        )
    lazy = results.get("lazy")
    if lazy:
        parts.append(
            "\n### Lazy loading: a route that never touches the session, every browser with a cookie\n"
        )
        rows = [
            [name, LAZY_WORKLOADS.get(workload, workload), us(f.median), f"±{f.spread * 100:.0f}%", _trips(f)]
            for (name, workload), f in lazy.items()
        ]
        parts.append(
            markdown_table(["middleware", "route", "µs/request", "spread", "Redis round trips/request"], rows)
        )
    conc = results.get("concurrency")
    if conc:
        parts.append("\n### Throughput with concurrent clients (req/s, read-mostly)\n")
        for label, table in conc.items():
            levels = sorted({c for by in table.values() for c in by})
            rows = [
                [name, *(f"{by.get(c, float('nan')):,.0f}" for c in levels)] for name, by in table.items()
            ]
            parts.append(f"{label}:\n")
            parts.append(
                markdown_table(["contender", *(f"{c} client{'s' if c > 1 else ''}" for c in levels)], rows)
            )
            parts.append("")
    growth = results.get("growth")
    if growth:
        sizes = sorted({size for g in growth.values() for size in g.points})
        active = min([*sizes, 1000])
        title = f"Cost per request as stored sessions grow (µs, sync door, {active:,} random active sessions)"
        parts.append(f"\n### {title}\n")
        rows = []
        for kind, g in growth.items():
            for workload in ("read", "write"):
                cells = [f"{g.points[s][workload] * 1e6:,.1f}" if s in g.points else "" for s in sizes]
                first = next((g.points[s][workload] for s in sizes if s in g.points), None)
                last = next((g.points[s][workload] for s in reversed(sizes) if s in g.points), None)
                drift = f"{last / first:.2f}x" if first and last else ""
                rows.append([kind, workload, *cells, drift])
        parts.append(
            markdown_table(["store", "workload", *(f"{s:,}" for s in sizes), "largest/smallest"], rows)
        )
    memory = results.get("memory")
    if memory:
        parts.append(
            f"\nMemory store: {memory['bytes_per_session']:,.0f} bytes of Python heap per session "
            f"({memory['sessions']:,} sessions of {memory['record_bytes']} bytes of JSON each)."
        )
    cluster = results.get("cluster")
    if cluster:
        parts.append("\n### Redis Cluster (3 masters) against one redis-server\n")
        rows = [
            [_row_name(f), f.workload, us(f.median), f"±{f.spread * 100:.0f}%", _trips(f)]
            for f in cluster.values()
        ]
        parts.append(
            markdown_table(["contender", "workload", "µs/request", "spread", "round trips/request"], rows)
        )
    parts.append("\n### Targets (issue 4), as ratios from this run\n")
    parts.append(markdown_table(TARGET_HEADERS, [t.row() for t in targets(results)]))
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> None:
    """One PNG: in-process cost per request, HTTP throughput, cost as sessions grow, clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [key for key in ("inprocess", "http", "growth", "concurrency") if results.get(key)]
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(8 * columns, 6.5 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    colours = {"read": "tab:blue", "write": "tab:orange"}
    for ax, key in zip(flat, panels, strict=False):
        if key == "inprocess":
            figures: dict[tuple[str, str], Figure] = results["inprocess"]
            names = list(dict.fromkeys(name for name, _ in figures))
            for offset, workload in enumerate(("read", "write")):
                values = [
                    figures[(n, workload)].median * 1e6 if (n, workload) in figures else 0 for n in names
                ]
                ax.barh(
                    [y + offset * 0.4 for y in range(len(names))],
                    values,
                    height=0.4,
                    color=colours[workload],
                    label=workload,
                )
            ax.set_yticks([y + 0.2 for y in range(len(names))], names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.set_xlabel("µs per request, median (log scale; lower is better)")
            ax.set_title("In-process request cycle")
            ax.legend()
        elif key == "http":
            http = results["http"]
            names = list(http)
            for offset, workload in enumerate(("read", "write")):
                values = [http[n].get(workload, {}).get("rate", 0) for n in names]
                ax.barh(
                    [y + offset * 0.4 for y in range(len(names))],
                    values,
                    height=0.4,
                    color=colours[workload],
                    label=workload,
                )
            ax.set_yticks([y + 0.2 for y in range(len(names))], names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("requests per second (higher is better)")
            ax.set_title("HTTP, one worker, each connection keeping its cookie")
            ax.legend()
        elif key == "growth":
            for kind, g in results["growth"].items():
                sizes = sorted(g.points)
                line = ax.plot(
                    sizes, [g.points[s]["read"] * 1e6 for s in sizes], marker="o", label=f"{kind} read"
                )
                ax.plot(
                    sizes,
                    [g.points[s]["write"] * 1e6 for s in sizes],
                    marker="x",
                    linestyle="--",
                    color=line[0].get_color(),
                    label=f"{kind} write",
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("stored sessions")
            ax.set_ylabel("µs per request (sync door)")
            ax.set_title("Cost per request as sessions grow")
            ax.legend(fontsize=8)
        else:
            for label, table in results["concurrency"].items():
                style = "-" if label.startswith("In process") else "--"
                where = "in process" if label.startswith("In process") else "HTTP"
                for name, by in table.items():
                    levels = sorted(by)
                    colour = "tab:blue" if name.startswith("websession") else "tab:gray"
                    ax.plot(
                        levels,
                        [by[c] for c in levels],
                        marker="o",
                        linestyle=style,
                        color=colour,
                        label=f"{name}, {where}",
                    )
            ax.set_xscale("log")
            ax.set_xticks([1, 8, 64], ["1", "8", "64"])
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel("requests per second, read-mostly")
            ax.set_title("Throughput with concurrent clients")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
