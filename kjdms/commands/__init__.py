"""The `kjdms` command: small click groups, one module each, added to Flask's CLI."""
from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup

from . import audit, backup, index, maintenance, records, report, setup, stats, users

GROUPS = (setup, users, index, records, maintenance, report, audit, backup, stats)


def register(app: Flask) -> None:
    """Add every kjdms command to app.cli."""
    for module in GROUPS:
        for command in module.COMMANDS:
            app.cli.add_command(command)


def main():
    """Run the kjdms command."""
    from .. import create_app

    # Flask's own run/shell/routes are developer tools (`flask --app kjdms shell`), not operations.
    FlaskGroup(create_app=create_app, add_default_commands=False, help="kjdms 会计人员信息采集档案系统").main()
