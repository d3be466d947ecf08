"""The `kjdms` command: small click groups, one module each, added to Flask's CLI."""
from __future__ import annotations

from flask import Flask

from . import audit, backup, index, maintenance, records, report, setup, stats, users

GROUPS = (setup, users, index, records, maintenance, report, audit, backup, stats)


def register(app: Flask) -> None:
    """Add every kjdms command to app.cli."""
    for module in GROUPS:
        for command in module.COMMANDS:
            app.cli.add_command(command)

