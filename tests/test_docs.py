"""The documentation builds with ``mkdocs build --strict``, and every example in it runs.

How examples in docs/**/*.md and README.md are run (docs/contributing.md says the same for
writers):

- ```` ```python ```` blocks run. All blocks of one page run in order, in one namespace, in a
  fresh empty directory, in a separate Python process (so pages cannot affect each other).
  Tracebacks point at the page and line.
- ```` ```console ```` blocks run too: each line that starts with ``$ `` is a shell command
  (a trailing ``\\`` continues it) that must exit with status 0; other lines are its output and
  are only shown. ``websession`` is this checkout's command.
- ``<!-- docs-test: skip -->`` on the line before a block shows it without running it. Use it
  only for code that cannot run anywhere but in the reader's own setup.
- Any other language (``sh``, ``text``, ``ts``, ``toml``, ...) is shown, not run.
- A page whose examples need a server says so once, on a line of its own anywhere on the
  page. The test starts (or borrows) a local server and exports the environment variables a
  reader would set in production, which the examples read with ``os.environ[...]``:

  - ``<!-- docs-test: redis PREFIX -->``: the shared Redis (``REDIS_URL``); the examples
    write only keys starting with PREFIX, which the test deletes before and after.
  - ``<!-- docs-test: upstash PREFIX -->``: the local Upstash REST server in front of the
    shared Redis (``UPSTASH_REDIS_REST_URL``, ``UPSTASH_REDIS_REST_TOKEN``); keys as for redis.
  - ``<!-- docs-test: postgres -->``: a database of the page's own (``DATABASE_URL``).
  - ``<!-- docs-test: memcached -->``: two memcached servers of the page's own
    (``MEMCACHE_SERVERS``, ``host:port`` separated by commas).
  - ``<!-- docs-test: dynamodb -->``: moto's DynamoDB emulator through the AWS SDK's own
    variables (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``); tables the page creates are deleted afterwards.
  - ``<!-- docs-test: workers-kv -->``: the Miniflare-backed KV REST server
    (``CLOUDFLARE_ACCOUNT_ID``, ``CLOUDFLARE_API_TOKEN``, ``KV_NAMESPACE_ID``, and
    ``KV_BASE_URL``, the namespace's URL on that server).

  Other servers add an entry to ``SERVICES`` below in the same way.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

RUN_LANGUAGES = {"python", "py", "console"}
_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*?)\s*$")
_SKIP = re.compile(r"\s*<!--\s*docs-test:\s*skip\s*-->\s*")
_DIRECTIVE = re.compile(r"\s*<!--\s*docs-test:\s*(?P<name>[a-z-]+)\s*(?P<arg>[^>]*?)\s*-->\s*")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skip: bool


def _name(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse(path: pathlib.Path) -> tuple[list[Block], list[tuple[str, str]]]:
    """Fenced code blocks (including indented ones, inside lists, admonitions and tabs) and
    the page's ``<!-- docs-test: ... -->`` directives (whole lines outside code blocks)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    directives: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            directive = _DIRECTIVE.fullmatch(lines[index])
            if directive is not None and directive["name"] != "skip":
                directives.append((directive["name"], directive["arg"]))
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = re.split(r"[\s{]", match["info"] or "text", maxsplit=1)[0].lstrip(".").lower()
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path}:{index + 1}: unclosed code fence")
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[start:end]
        ]
        found.append(
            Block(
                page=_name(path),
                line=start + 1,
                language=language,
                code=textwrap.dedent("\n".join(body)) + "\n",
                skip=bool(_SKIP.fullmatch(previous)),
            )
        )
        index = end + 1
    return found, directives


def blocks_of(path: pathlib.Path) -> list[Block]:
    return parse(path)[0]


def directives_of(path: pathlib.Path) -> list[tuple[str, str]]:
    return parse(path)[1]


# -- servers a page may ask for ----------------------------------------------------------------
#
# Each service is a context manager: it starts or borrows a local server (the fixtures in
# tests/servers/), cleans up after the page, and gives the environment variables the examples
# read, under the names a reader would set in production (DATABASE_URL, AWS_*, ...).

Service = Callable[[pytest.FixtureRequest, str], AbstractContextManager[dict[str, str]]]


def _no_argument(name: str, argument: str) -> None:
    if argument:
        raise AssertionError(f"<!-- docs-test: {name} --> takes no argument, got {argument!r}")


def _delete_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def _redis(request: pytest.FixtureRequest, prefix: str) -> Iterator[dict[str, str]]:
    """The shared Redis; the page writes only keys under PREFIX. Exports REDIS_URL."""
    if not prefix:
        raise AssertionError("<!-- docs-test: redis PREFIX --> needs the key prefix the examples use")
    url: str = request.getfixturevalue("redis_url")
    _delete_prefix(url, prefix)
    try:
        yield {"REDIS_URL": url}
    finally:
        _delete_prefix(url, prefix)


@contextmanager
def _upstash(request: pytest.FixtureRequest, prefix: str) -> Iterator[dict[str, str]]:
    """The local Upstash REST server (in front of the shared Redis); keys under PREFIX only."""
    if not prefix:
        raise AssertionError("<!-- docs-test: upstash PREFIX --> needs the key prefix the examples use")
    server = request.getfixturevalue("upstash_server")
    url: str = request.getfixturevalue("redis_url")
    _delete_prefix(url, prefix)
    try:
        yield {"UPSTASH_REDIS_REST_URL": server.url, "UPSTASH_REDIS_REST_TOKEN": server.token}
    finally:
        _delete_prefix(url, prefix)


@contextmanager
def _postgres(request: pytest.FixtureRequest, argument: str) -> Iterator[dict[str, str]]:
    """A database of the page's own on the local PostgreSQL, dropped afterwards."""
    from tests.servers.postgres import temporary_database

    _no_argument("postgres", argument)
    with temporary_database("websession_docs") as dsn:
        yield {"DATABASE_URL": dsn}


@contextmanager
def _memcached(request: pytest.FixtureRequest, argument: str) -> Iterator[dict[str, str]]:
    """Two memcached servers of the page's own (so examples can show several servers)."""
    from tests.servers.memcached import MemcachedProcess

    _no_argument("memcached", argument)
    servers: list[MemcachedProcess] = []
    try:
        for _ in range(2):
            servers.append(MemcachedProcess())
            servers[-1].start()
        yield {"MEMCACHE_SERVERS": ",".join(server.address for server in servers)}
    finally:
        for server in servers:
            server.remove()


@contextmanager
def _dynamodb(request: pytest.FixtureRequest, argument: str) -> Iterator[dict[str, str]]:
    """moto's DynamoDB emulator, through the AWS SDK's own environment variables; tables the
    page creates are deleted afterwards."""
    from tests.servers.moto import MOTO_CLIENT_OPTIONS

    _no_argument("dynamodb", argument)
    client = request.getfixturevalue("dynamodb_client")
    before = set(client.list_tables()["TableNames"])
    try:
        yield {
            "AWS_ENDPOINT_URL_DYNAMODB": request.getfixturevalue("moto_endpoint"),
            "AWS_ACCESS_KEY_ID": MOTO_CLIENT_OPTIONS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": MOTO_CLIENT_OPTIONS["aws_secret_access_key"],
        }
    finally:
        for table in set(client.list_tables()["TableNames"]) - before:
            client.delete_table(TableName=table)


@contextmanager
def _workers_kv(request: pytest.FixtureRequest, argument: str) -> Iterator[dict[str, str]]:
    """The Miniflare-backed Workers KV REST server; KV_BASE_URL points the store at it."""
    _no_argument("workers-kv", argument)
    server = request.getfixturevalue("kv_server")
    yield {
        "CLOUDFLARE_ACCOUNT_ID": server.account_id,
        "CLOUDFLARE_API_TOKEN": server.api_token,
        "KV_NAMESPACE_ID": server.namespace_id,
        "KV_BASE_URL": server.base_url,
    }


#: directive name -> a context manager that prepares the server, gives the environment
#: variables the examples read, and cleans up after the page.
SERVICES: dict[str, Service] = {
    "redis": _redis,
    "upstash": _upstash,
    "postgres": _postgres,
    "memcached": _memcached,
    "dynamodb": _dynamodb,
    "workers-kv": _workers_kv,
}


# -- running a page ----------------------------------------------------------------------------

RUNNER = r"""
import json, subprocess, sys, traceback, warnings

# Examples must not teach what websession warns about (an unsigned session cookie).
warnings.filterwarnings("error", message=".*cookie is not signed")
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for block in blocks:
    where = f"{block['page']}:{block['line']}"
    if block["language"] == "console":
        for command in block["commands"]:
            done = subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{where}: `{command}` exited with {done.returncode}\n{done.stdout}{done.stderr}")
        continue
    # Pad with blank lines so tracebacks give the line number in the Markdown file.
    code = compile("\n" * (block["line"] - 1) + block["code"], block["page"], "exec")
    try:
        exec(code, namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"{where}: this example failed")
"""


def console_commands(code: str) -> list[str]:
    commands: list[str] = []
    pending: list[str] | None = None
    for line in code.splitlines():
        if pending is not None:
            pending.append(line.rstrip("\\").strip())
            if not line.endswith("\\"):
                commands.append(" ".join(pending))
                pending = None
        elif line.startswith("$ "):
            text = line[2:]
            if text.endswith("\\"):
                pending = [text.rstrip("\\").strip()]
            else:
                commands.append(text)
    return commands


@pytest.fixture(scope="module")
def command_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A directory for PATH holding ``websession``: this checkout's console script."""
    directory = tmp_path_factory.mktemp("bin")
    script = directory / "websession"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "from websession.cli import main; main()" "$@"\n'
    )
    script.chmod(0o755)
    return directory


def runnable_pages() -> list[pathlib.Path]:
    return [p for p in PAGES if any(b.language in RUN_LANGUAGES and not b.skip for b in blocks_of(p))]


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(
    page: pathlib.Path, tmp_path: pathlib.Path, command_dir: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    with ExitStack() as stack:
        exported: dict[str, str] = {}
        for name, argument in directives_of(page):
            if name not in SERVICES:
                raise AssertionError(f"{page}: unknown directive <!-- docs-test: {name} -->")
            exported.update(stack.enter_context(SERVICES[name](request, argument)))
        payload = [
            {
                "page": block.page,
                "line": block.line,
                "language": block.language,
                "code": block.code,
                "commands": console_commands(block.code) if block.language == "console" else [],
            }
            for block in blocks_of(page)
            if block.language in RUN_LANGUAGES and not block.skip
        ]
        # What a reader's shell would have: the page's services, and no stray settings that
        # point the examples elsewhere (the tests' own WEBSESSION_* and cloud credentials).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSESSION_", "AWS_"))}
        env.update(exported)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        env["PATH"] = os.pathsep.join([str(command_dir), env.get("PATH", "")])
        result = subprocess.run(
            [sys.executable, "-c", RUNNER],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_every_python_example_is_run_or_marked() -> None:
    """A page cannot hide Python from the runner behind a misspelt language."""
    for page in PAGES:
        for block in blocks_of(page):
            looks_python = re.search(r"^(from \w+ import|import \w+)", block.code, re.M)
            if looks_python and block.language not in RUN_LANGUAGES and block.language != "pycon":
                assert block.skip, f"{block.page}:{block.line}: Python in a ```{block.language} block"


def test_the_block_parser(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "sample.md"
    sample = (
        "<!-- docs-test: redis demo: -->\n"
        "# t\n\n```python\nx = 1\n```\n\n<!-- docs-test: skip -->\n```python\nraise SystemExit\n```\n\n"
        '=== "Tab"\n\n    ```python title="a.py"\n    y = x + 1\n        z = 2\n    ```\n\n'
        "```console\n$ echo one \\\n    two\none two\n$ true\n```\n"
    )
    page.write_text(sample + "```text\n<!-- docs-test: postgres -->\n```\n")
    blocks, directives = parse(page)
    assert directives == [("redis", "demo:")]
    assert [(b.language, b.skip, b.line) for b in blocks] == [
        ("python", False, 5),
        ("python", True, 10),
        ("python", False, 16),
        ("console", False, 21),
        ("text", False, 27),
    ]
    assert blocks[2].code == "y = x + 1\n    z = 2\n"
    assert console_commands(blocks[3].code) == ["echo one two", "true"]


# -- building the site -------------------------------------------------------------------------


def build(root: pathlib.Path, site: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_site_builds_strictly_and_offline(tmp_path: pathlib.Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    for page in DOCS.rglob("*.md"):
        relative = page.relative_to(DOCS).with_suffix("")
        built = tmp_path / "site" / ("index.html" if relative.name == "index" else relative / "index.html")
        if relative.name == "index" and relative.parent != pathlib.Path("."):
            built = tmp_path / "site" / relative.parent / "index.html"
        assert built.exists(), built
    for built_page in (tmp_path / "site").rglob("*.html"):
        html = built_page.read_text(encoding="utf-8")
        # Nothing is fetched from third parties: no remote scripts, styles or fonts.
        assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", html), built_page
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "create_sqlite_session_storage" in reference and "open_store" in reference


def test_pages_added_later_appear_in_the_navigation(tmp_path: pathlib.Path) -> None:
    """Other areas add docs/stores/<x>.md and docs/frameworks/<x>.md without editing a nav."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "mkdocs_hooks.py", copy / "scripts" / "mkdocs_hooks.py")
    shutil.copytree(ROOT / "src", copy / "src")
    (copy / "docs" / "stores" / "zebra.md").write_text("# Zebra store\n\nStripes.\n")
    (copy / "docs" / "frameworks").mkdir(exist_ok=True)
    (copy / "docs" / "frameworks" / "bottle.md").write_text("# Bottle\n\nA bottle.\n")
    result = build(copy, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Zebra store" in html and "Bottle" in html
    # Reading order: getting started, then stores, then frameworks, then the rest.
    positions = [html.index(title) for title in ("Getting started", "Zebra store", "Bottle", "Command line")]
    assert positions == sorted(positions)
