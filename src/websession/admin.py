"""The maintenance commands of ``websession``: stats, ls, show, rm, purge, migrate and keygen.

Each command takes a store URL (see :func:`websession.open_store`), streams over the store
with :meth:`Store.scan <websession.stores.base.Store.scan>`, prints a rich table (or JSON
with ``--json``) and shows a progress bar on a terminal during long scans. Any failure is one
line on stderr and a non-zero exit status, never a traceback (set ``WEBSESSION_DEBUG=1`` to get
one). The commands form the click group :data:`admin_commands`, which the ``websession``
console script includes; ``python -m websession.admin`` runs them on their own.

Example::

    $ websession keygen
    $ websession stats sqlite:///var/lib/app/sessions.db
    $ websession migrate sqlite:///var/lib/app/sessions.db "redis://localhost:6379/0?prefix=app:"
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as random_secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from itertools import islice
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from . import codec
from .errors import SessionError
from .maintenance import MigrateReport, collect_stats, migrate, record_size, remaining
from .storage import SessionStorage
from .stores.base import Record, Store
from .urls import open_store
from .users import Device, UserIndexUnsupportedError

#: Set to any value to let unexpected errors show their traceback.
DEBUG_ENV = "WEBSESSION_DEBUG"
#: Secrets for reading signed cookies (``show`` and ``rm`` accept a cookie instead of an id).
SECRET_ENV = "WEBSESSION_SECRET"  # noqa: S105 - the name of a variable, not a secret

_PROG = "websession"


class CommandError(click.ClickException):
    """A failure the command explains in one line; exit status 1."""


class AdminCommand(click.Command):
    """A command whose failures become one line of text instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise CommandError(describe(exc)) from exc


class AdminGroup(click.Group):
    """A group whose usage errors and failures print one line (``websession: error: ...``)."""

    command_class = AdminCommand

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        prog = prog_name or _PROG
        try:
            result = super().main(args, prog, standalone_mode=False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else prog
            _fail(f"{prog}: {exc.format_message()} (see '{command} --help')", exc.exit_code)
        except click.ClickException as exc:
            _fail(f"{prog}: error: {exc.format_message()}", exc.exit_code)
        except click.Abort:
            _fail(f"{prog}: interrupted", 130)
        except BrokenPipeError:
            # The reader went away (`websession ls URL | head`): that is not an error.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(_one_line(message), err=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe(exc: BaseException) -> str:
    """One line that says what went wrong, for an exception a command did not expect.

    Example::

        >>> describe(NotImplementedError("the custom store cannot list its records"))
        'the custom store cannot list its records, so this command cannot use it'
    """
    if isinstance(exc, SessionError):
        text = str(exc)
        cause = exc.__cause__
        if cause is not None and str(cause) and str(cause) not in text:
            text = f"{text}: {cause}"
    elif isinstance(exc, NotImplementedError):
        text = f"{exc}, so this command cannot use it"
    elif isinstance(exc, (OSError, ValueError)):
        text = str(exc) or type(exc).__name__
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)"
    return _one_line(text)


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
def admin_commands() -> None:
    """Inspect and maintain the sessions a websession store keeps.

    STORE arguments are store URLs: sqlite:///path/sessions.db, file:///path/dir,
    redis://host:6379/0?prefix=app:, postgresql://..., and so on.
    """


# -- shared options and plumbing ---------------------------------------------------------------

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_quiet_option = click.option("--quiet", "-q", is_flag=True, help="Hide progress bars.")
#: A click command (or the function it is made from), as click's decorators take it.
CommandT = TypeVar("CommandT", bound="Callable[..., Any] | click.Command")


def _count_option(
    *names: str, default: int, low: int, high: int | None = None, help: str
) -> Callable[[CommandT], CommandT]:
    """A whole-number option from ``low`` to ``high`` (no upper bound: None), whose ``--help``
    shows its default."""
    return click.option(*names, default=default, show_default=True, type=click.IntRange(low, high), help=help)


_secret_option = click.option(
    "--secret",
    "secrets",
    multiple=True,
    envvar=SECRET_ENV,
    metavar="SECRET",
    help=f"Cookie secret, to accept a cookie instead of an id (repeatable; default: ${SECRET_ENV}).",
)


def _split_secrets(values: Sequence[str]) -> list[str]:
    return [part for value in values for part in value.replace(",", " ").split() if part]


@contextlib.contextmanager
def _opened(url: str, secrets: Sequence[str] = ()) -> Iterator[SessionStorage]:
    """Open the storage a URL names, insist that it has a store, and close it afterwards."""
    if urlsplit(url).scheme.lower() == "cookie":
        # Said before opening: cookie storage refuses to open without secrets it never needs here.
        raise CommandError(f"{url} keeps sessions in the browsers' cookies: there is no store to read")
    options: dict[str, Any] = {}
    if secrets:
        options["secrets"] = _split_secrets(secrets)
    with warnings.catch_warnings():
        # The commands never set cookies, so an unsigned cookie is not a risk here.
        warnings.filterwarnings("ignore", message=".*cookie is not signed", category=UserWarning)
        storage = open_store(url, **options)
    if not isinstance(getattr(storage, "store", None), Store):
        raise CommandError(f"{url} keeps sessions in the browsers' cookies: there is no store to read")
    try:
        yield storage
    finally:
        storage.close()


def _stdout() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # pipes and logs: do not cut 32-character ids
    return console


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


@contextlib.contextmanager
def _progress(description: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; ``update(done)`` moves it."""
    console = _stderr()
    if not enabled or not console.is_terminal:
        yield lambda done: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def _total(store: Store, enabled: bool) -> int | None:
    """The record count for a progress bar, when the store can count without a scan."""
    return store.count() if enabled and store.cheap_count else None


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float | None) -> str:
    """A short duration: ``6d 23h``, ``59m 3s``, ``never``.

    Example::

        >>> human_duration(7 * 86400 - 3600), human_duration(61), human_duration(None)
        ('6d 23h', '1m 1s', 'never')
    """
    if seconds is None:
        return "never"
    whole = max(0, int(seconds))
    for unit, next_unit, name, next_name in (
        (86400, 3600, "d", "h"),
        (3600, 60, "h", "m"),
        (60, 1, "m", "s"),
    ):
        if whole >= unit:
            return f"{whole // unit}{name} {whole % unit // next_unit}{next_name}"
    return f"{whole}s"


def human_bytes(size: float) -> str:
    """A size in bytes for people: ``812 B``, ``1.5 KiB``, ``3.2 MiB``.

    Example::

        >>> human_bytes(812), human_bytes(1536)
        ('812 B', '1.5 KiB')
    """
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _describe_record(id: str, record: Record, now: datetime) -> dict[str, Any]:
    seconds = remaining(record, now)
    return {
        "id": id,
        "size": record_size(record),
        "expires": _iso(record.expires),
        "ttl": None if seconds is None else max(0, int(seconds)),
        "keys": sorted(record.data),
    }


def _resolve_id(storage: SessionStorage, value: str) -> str:
    """An id given as is, or read from a cookie value or a ``Cookie`` header."""
    store = storage.store
    if store.is_valid_id(value):
        return value
    cookie = storage.cookie
    verified = cookie.read(value) if f"{cookie.name}=" in value else None
    if verified is None:
        verified = cookie.unsign(unquote(value) if "%" in value else value)
    if verified is not None and isinstance(verified.value, str) and store.is_valid_id(verified.value):
        return verified.value
    hint = "" if cookie.is_signed else f" (pass --secret or set {SECRET_ENV} to read a signed cookie)"
    shown = value if len(value) <= 60 else value[:57] + "..."
    raise CommandError(f"{shown!r} is neither a session id nor a {cookie.name} cookie that verifies{hint}")


# -- the commands ------------------------------------------------------------------------------


@admin_commands.command()
@click.argument("store")
@_json_option
@_quiet_option
def stats(store: str, as_json: bool, quiet: bool) -> None:
    """Count the sessions in STORE, their sizes and how long they have left.

    Sizes are the JSON of each session's data; percentiles are within 1.6 %.
    """
    show_progress = not (quiet or as_json)
    with _opened(store) as storage:
        total = _total(storage.store, show_progress)
        with _progress("scanning", total, show_progress) as update:
            result = collect_stats(storage.store, on_record=update)
    summary = result.as_json()
    if as_json:
        _print_json(summary)
        return
    console = _stdout()
    sizes = summary["bytes"]
    overview = Table(title=f"{summary['count']:,} sessions in the {result.store} store", title_justify="left")
    for name in ("total", "mean", "p50", "p90", "p99", "max"):
        overview.add_column(name, justify="right")
    overview.add_row(*(human_bytes(sizes[name]) for name in ("total", "mean", "p50", "p90", "p99", "max")))
    console.print(overview)
    lifetimes = Table(title="time left", title_justify="left")
    lifetimes.add_column("expires in")
    lifetimes.add_column("sessions", justify="right")
    lifetimes.add_column("share", justify="right")
    for label, count in summary["ttl"].items():
        share = f"{100 * count / result.count:.1f} %" if result.count else "-"
        lifetimes.add_row(label, f"{count:,}", share)
    console.print(lifetimes)


@admin_commands.command(name="ls")
@click.argument("store")
@_count_option(
    "--limit", "-n", default=50, low=0, help="List at most this many sessions; 0 lists them all (streamed)."
)
@click.option(
    "--user", "user", metavar="USER", default=None, help="List this user's sessions (devices) only."
)
@_json_option
def list_sessions(store: str, limit: int, user: str | None, as_json: bool) -> None:
    """List sessions in STORE: id, size, expiry and key names (not values).

    With --user, lists the sessions USER is signed in with, from the user's index (no scan):
    storage key, sign-in time, last use, expiry and labels. With --json, prints one JSON object
    per line (JSON Lines), as the store is scanned.
    """
    if user is not None:
        _list_devices(store, user, as_json)
        return
    with _opened(store) as storage:
        now = storage.store.clock()
        records = storage.store.scan()
        rows = islice(records, limit) if limit else records
        if as_json:
            for id, record in rows:
                _print_json(_describe_record(id, record, now))
            return
        console = _stdout()
        if limit == 0:
            # Unbounded: stream aligned lines instead of holding a whole table in memory.
            console.print(f"{'id':32}  {'size':>8}  {'expires':20}  {'left':>8}  keys", style="bold")
            for id, record in rows:
                row = _describe_record(id, record, now)
                console.print(
                    f"{id:32}  {row['size']:>8}  {row['expires'] or '-':20}  "
                    f"{human_duration(remaining(record, now)):>8}  {escape(', '.join(row['keys']))}",
                    soft_wrap=True,
                )
            return
        table = Table()
        for name, justify in (("id", "left"), ("size", "right"), ("expires", "left"), ("left", "right")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        table.add_column("keys")
        shown = 0
        for id, record in rows:
            row = _describe_record(id, record, now)
            table.add_row(
                id,
                str(row["size"]),
                row["expires"] or "-",
                human_duration(remaining(record, now)),
                escape(", ".join(row["keys"])),
            )
            shown += 1
        console.print(table)
        more = next(records, None) is not None
        if more:
            console.print(f"first {shown} sessions; use --limit 0 to list them all", style="dim")
        elif not shown:
            console.print("no sessions", style="dim")


def _describe_device(device: Device) -> dict[str, Any]:
    return {
        "key": device.key,
        "created": _iso(device.created),
        "last_seen": _iso(device.last_seen),
        "expires": _iso(device.expires),
        "labels": dict(device.labels),
    }


def _list_devices(store: str, user: str, as_json: bool) -> None:
    with _opened(store) as storage, _user_index():
        devices = storage.sessions_of(user)
    if as_json:
        for device in devices:
            _print_json(_describe_device(device))
        return
    console = _stdout()
    if not devices:
        console.print(f"no sessions of {escape(user)}", style="dim")
        return
    table = Table(title=f"sessions of {escape(user)}", title_justify="left")
    for name in ("key", "signed in", "last seen", "expires", "labels"):
        table.add_column(name, no_wrap=name != "labels")
    for device in devices:
        row = _describe_device(device)
        labels = ", ".join(f"{name}={value}" for name, value in row["labels"].items())
        table.add_row(row["key"], row["created"], row["last_seen"], row["expires"] or "-", escape(labels))
    console.print(table)


@contextlib.contextmanager
def _user_index() -> Iterator[None]:
    """Turn a store without a user index into the command's one-line error."""
    try:
        yield
    except UserIndexUnsupportedError as exc:
        raise CommandError(str(exc)) from exc


@admin_commands.command()
@click.argument("store")
@click.argument("session")
@_secret_option
@_json_option
def show(store: str, session: str, secrets: tuple[str, ...], as_json: bool) -> None:
    """Show one session in STORE: its data and expiry.

    SESSION is an id, or the value of the session cookie (from the browser's developer tools)
    when the cookie's secret is given. Reading does not extend the session's lifetime.
    """
    with _opened(store, secrets) as storage:
        id = _resolve_id(storage, session)
        record = storage.store.peek(id)
        if record is None:
            raise CommandError(f"no live session with id {id} in the {storage.store.kind} store")
        described = _describe_record(id, record, storage.store.clock())
    del described["keys"]
    described["data"] = record.data
    if as_json:
        _print_json(described)
        return
    console = _stdout()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("id", id)
    table.add_row("expires", described["expires"] or "never")
    table.add_row("left", human_duration(described["ttl"]))
    table.add_row("size", f"{described['size']} bytes")
    console.print(table)
    console.print_json(codec.dumps(record.data))


@admin_commands.command()
@click.argument("store")
@click.argument("sessions", nargs=-1, metavar="[SESSION]...")
@click.option("--user", "user", metavar="USER", default=None, help="Sign USER out of every session.")
@click.option("--keep", "keep", metavar="SESSION", default=None, help="With --user: keep this session.")
@click.option("--missing-ok", is_flag=True, help="Do not fail when a session does not exist.")
@_secret_option
@_json_option
def rm(
    store: str,
    sessions: tuple[str, ...],
    user: str | None,
    keep: str | None,
    missing_ok: bool,
    secrets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Delete sessions from STORE: their users are signed out at their next request.

    Each SESSION is an id, or a session cookie value when the cookie's secret is given.
    With --user, signs USER out everywhere (or everywhere but --keep), atomically, from the
    user's index: no scan of the store.
    """
    if user is not None or keep is not None:
        _revoke_user(store, sessions, user, keep, secrets, as_json)
        return
    if not sessions:
        raise click.UsageError("give SESSION ids, or --user USER")
    deleted: list[str] = []
    missing: list[str] = []
    with _opened(store, secrets) as storage:
        # Resolve every argument first, so a typo deletes nothing.
        ids = list(dict.fromkeys(_resolve_id(storage, value) for value in sessions))
        for id in ids:
            if _delete(storage, id):
                deleted.append(id)
            else:
                missing.append(id)
    if as_json:
        _print_json({"deleted": deleted, "missing": missing})
    else:
        console = _stdout()
        for id in deleted:
            console.print(f"deleted {id}")
        if missing and missing_ok:
            for id in missing:
                console.print(f"not found {id}", style="dim")
    if missing and not missing_ok:
        raise CommandError(f"no live session with id {', '.join(missing)}")


def _resolve_key(storage: SessionStorage, value: str) -> str:
    """A session to keep: an id or cookie (as for rm), or a storage key as `ls --user` lists it."""
    store = storage.store
    if store.hashes_ids and store.is_storage_key(value):
        return value
    return _resolve_id(storage, value)


def _delete(storage: SessionStorage, id: str) -> bool:
    """Delete one session; a signed-in one also leaves its user's index (a revocation)."""
    if storage.store.user_index:
        return storage.revoke(id)
    if storage.store.read(id, None) is None:
        return False
    storage.store.delete(id)
    return True


def _revoke_user(
    store: str,
    sessions: tuple[str, ...],
    user: str | None,
    keep: str | None,
    secrets: tuple[str, ...],
    as_json: bool,
) -> None:
    if user is None:
        raise click.UsageError("--keep needs --user")
    if sessions:
        raise click.UsageError("give either SESSION ids or --user, not both")
    with _opened(store, secrets) as storage, _user_index():
        kept = None if keep is None else _resolve_key(storage, keep)
        revoked = storage.revoke_user(user, keep=kept)
    if as_json:
        _print_json({"user": user, "revoked": revoked, "kept": kept})
    else:
        suffix = "" if kept is None else f", kept {kept}"
        _stdout().print(
            f"signed {escape(user)} out of {revoked} session{'s' if revoked != 1 else ''}{suffix}"
        )


@admin_commands.command()
@click.argument("store")
@_json_option
@_quiet_option
def purge(store: str, as_json: bool, quiet: bool) -> None:
    """Delete expired sessions from STORE (file, sqlite, SQL, DynamoDB).

    Expired sessions are never served; purging reclaims their space. Stores with their own
    expiry (Redis, memcached, Workers KV) need no purge. DynamoDB's own expiry deletes items
    a day or two late, so a purge there deletes them now.
    """
    with _opened(store) as storage:
        kind = storage.store.kind
        native = storage.store.native_ttl
        # A store with native TTL that still overrides purge_expired (DynamoDB) is purged.
        own = getattr(storage.store, "wrapped", storage.store)  # a telemetry proxy's store
        nothing_to_do = native and type(own).purge_expired is Store.purge_expired
        if nothing_to_do:
            purged = 0
        else:
            with _progress("purging expired sessions", None, not (quiet or as_json)):
                purged = storage.store.purge_expired()
    if as_json:
        _print_json({"store": kind, "purged": purged, "native_ttl": native})
    elif nothing_to_do:
        _stdout().print(f"the {kind} store expires sessions itself: nothing to purge")
    else:
        _stdout().print(f"purged {purged:,} expired sessions from the {kind} store")


@admin_commands.command(name="migrate")
@click.argument("source")
@click.argument("target")
@click.option("--dry-run", is_flag=True, help="Read everything, write nothing, report what would be copied.")
@click.option(
    "--keep-existing",
    is_flag=True,
    help="Leave sessions TARGET already has (a second pass after the app switched to TARGET).",
)
@_count_option(
    "--batch-size", default=500, low=1, high=10_000, help="Sessions written per round trip or transaction."
)
@_json_option
@_quiet_option
def migrate_sessions(
    source: str, target: str, dry_run: bool, keep_existing: bool, batch_size: int, as_json: bool, quiet: bool
) -> None:
    """Copy live sessions from SOURCE to TARGET, keeping ids and remaining lifetimes.

    Users stay signed in: their cookies name the same ids, and each session expires when it
    would have. Sessions without an expiry get TARGET's ttl option, if it has one. Memory use
    stays at one batch, whatever the number of sessions.
    """
    if source == target:
        raise CommandError("SOURCE and TARGET are the same store")
    show_progress = not (quiet or as_json)
    started = time.monotonic()
    with _opened(source) as source_storage, _opened(target) as target_storage:
        total = _total(source_storage.store, show_progress)
        label = "checking" if dry_run else "copying"
        with _progress(label, total, show_progress) as update:
            report: MigrateReport = migrate(
                source_storage.store,
                target_storage.store,
                dry_run=dry_run,
                replace=not keep_existing,
                batch_size=batch_size,
                on_progress=lambda r: update(r.scanned),
            )
        kinds = source_storage.store.kind, target_storage.store.kind
    seconds = time.monotonic() - started
    if as_json:
        _print_json(
            {**report.as_json(), "source": kinds[0], "target": kinds[1], "seconds": round(seconds, 3)}
        )
        return
    console = _stdout()
    verb = "would copy" if dry_run else "copied"
    rate = f" ({report.scanned / seconds:,.0f}/s)" if seconds > 0 and report.scanned else ""
    console.print(
        f"{verb} {report.copied:,} of {report.scanned:,} sessions from {kinds[0]} to {kinds[1]} "
        f"in {seconds:.1f} s{rate}"
    )
    for count, reason in (
        (report.kept, "already in the target, kept"),
        (report.expired, "expired before they were copied"),
        (report.invalid_ids, "have ids the target cannot hold"),
    ):
        if count:
            console.print(f"{count:,} sessions {reason}")
    if dry_run:
        console.print("dry run: nothing was written", style="dim")


@admin_commands.command()
@_count_option("--bytes", "nbytes", default=32, low=16, high=1024, help="Random bytes in the secret.")
@_json_option
def keygen(nbytes: int, as_json: bool) -> None:
    """Print a strong random secret for create_cookie(secrets=[...]).

    Put the new secret first and keep the old ones until their cookies have expired.
    """
    secret = random_secrets.token_urlsafe(nbytes)
    if as_json:
        _print_json({"secret": secret})
    else:
        click.echo(secret)


__all__ = ["AdminCommand", "AdminGroup", "CommandError", "admin_commands", "describe"]

if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    admin_commands.main(prog_name=_PROG)
