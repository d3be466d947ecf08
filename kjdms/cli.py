"""The `kjdms` console command: Flask's CLI around the application factory, with only kjdms's own commands."""
from __future__ import annotations

from flask.cli import FlaskGroup

from . import create_app


def main():
    """Run the kjdms command."""
    # Flask's own run/shell/routes are developer tools (`flask --app kjdms shell`), not operations.
    FlaskGroup(create_app=create_app, add_default_commands=False, help="kjdms 会计人员信息采集档案系统").main()
