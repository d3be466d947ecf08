"""The statistics counters: stats check, stats rebuild."""
from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from ..extensions import db
from ..models import Region

SHOWN = 20


@click.group("stats")
def stats_group():
    """核对、重建统计页使用的计数器。"""


@stats_group.command("check")
@with_appcontext
def stats_check():
    """从档案（含流转记录）重新计数，列出与计数器不符之处（有则退出码为 1）。"""
    from ..services.stats_counters import differences
    from ..services.transaction import read_snapshot

    # The counters and the dossiers read at one instant: a change committed between the two reads is no difference.
    with read_snapshot(db.engine) as connection:
        found = differences(connection)
        names = dict(connection.execute(select(Region.id, Region.name)).all())
    for (region_id, state, dimension, value), stored, actual in found[:SHOWN]:
        region = names.get(region_id, "未确定地区" if region_id == 0 else f"#{region_id}")
        click.echo(f"不符：地区 {region}，状态 {state}，维度 {dimension}，值 {value or '（未填写）'}："
                   f"计数器 {stored}，档案实际 {actual}")
    if len(found) > SHOWN:
        click.echo(f"……另有 {len(found) - SHOWN} 处不符")
    if found:
        click.echo(f"计数器有 {len(found)} 处与档案不符：请运行 kjdms stats rebuild")
        raise SystemExit(1)
    click.echo("计数器与档案一致")


@stats_group.command("rebuild")
@with_appcontext
def stats_rebuild():
    """按档案逐批重新计数并重算计数器；中断后再次运行即可继续。"""
    from ..services.stats_counters import rebuild

    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="重新计数")
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        moved = rebuild(db.engine.begin, progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"计数器已重建：{moved} 份档案的计数有变动")


COMMANDS = (stats_group,)
