"""The ``websession`` command.

``websession demo`` serves the demo app; the maintenance commands (stats, ls, show, rm, purge,
migrate, keygen) come from :mod:`websession.admin`. Each subcommand is a self-contained
function registered on the :func:`main` group.

Example::

    >>> from click.testing import CliRunner
    >>> output = CliRunner().invoke(main, ["--help"]).output
    >>> "demo" in output and "migrate" in output
    True
"""

from __future__ import annotations

import click

from . import __version__
from .admin import AdminGroup, admin_commands


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="websession")
def main() -> None:
    """Server-side web sessions: run the demo, inspect and maintain stores."""


@main.command()
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    default=None,
    help="Store URL (sqlite://, file://, memory://, redis://, ...). Default: SQLite in --dir.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option(
    "--dir",
    "directory",
    default=".websession-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the default SQLite store and the generated secret.",
)
def demo(store_url: str | None, host: str, port: int, directory: str) -> None:
    """Serve the demo app: sign in, flash messages, a counter, a cart, a session inspector.

    Cookies are signed with WEBSESSION_SECRET, or with a secret generated once and kept in --dir.
    """
    try:
        from .demo import serve
    except ImportError as exc:  # pragma: no cover - depends on what is installed
        raise click.ClickException(f"the demo needs {exc.name}: pip install 'websession[demo]'") from exc
    from .errors import ConfigurationError

    try:
        serve(store_url=store_url, host=host, port=port, directory=directory)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc


for _command in admin_commands.commands.values():
    main.add_command(_command)

__all__ = ["main"]
