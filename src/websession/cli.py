"""The ``websession`` command: the console script that pyproject.toml names.

The maintenance commands come from :mod:`websession.admin`; other areas add theirs here.
"""

from __future__ import annotations

import click

from .admin import AdminGroup, admin_commands


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="websession", prog_name="websession")
def main() -> None:
    """Server-side web sessions: inspect and maintain session stores."""


for _command in admin_commands.commands.values():
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main.main(prog_name="websession")
