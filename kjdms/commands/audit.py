"""The audit log's hash chain: verify it, print an anchor to keep elsewhere."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..extensions import db


def _anchor(value):
    from ..services.audit_chain import Anchor

    try:
        return Anchor.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.group("audit")
def audit_group():
    """核对审计日志的散列链，输出锚点。"""


@audit_group.command("verify")
@click.option("--anchor", "anchors", multiple=True, metavar="序号:散列", help="此前由 kjdms audit anchor 输出并另行保存的锚点（可多次给出）。")
@with_appcontext
def audit_verify(anchors):
    """逐条核对审计日志的散列链（及锚点）；不符时指出第一条并退出码为 1。"""
    from ..services.audit_chain import verify

    checked, problem = verify(db.session, tuple(_anchor(value) for value in anchors))
    if problem:
        click.echo(f"审计日志未通过核对（已核对 {checked} 条）：{problem}")
        raise SystemExit(1)
    click.echo(f"审计日志核对通过：{checked} 条" + (f"，与 {len(anchors)} 个锚点一致" if anchors else ""))


@audit_group.command("anchor")
@with_appcontext
def audit_anchor():
    """输出审计日志最新一条的序号和散列（序号:散列），请另行保存，供日后核对。"""
    from ..services.audit_chain import anchor

    click.echo(str(anchor(db.session)))


COMMANDS = (audit_group,)
