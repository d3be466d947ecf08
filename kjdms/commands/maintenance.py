"""Keep an instance sound: blobs verify/gc, workflow show (Flask-Migrate adds `kjdms db`)."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..backends import get_blob_store, get_workflow
from ..extensions import db


@click.group("workflow")
def workflow_group():
    """查看档案工作流。"""


@workflow_group.command("show")
@with_appcontext
def workflow_show():
    """以 Mermaid 状态图输出工作流。"""
    click.echo(get_workflow().mermaid(), nl=False)


@click.group("blobs")
def blobs_group():
    """对照数据库核对、清理文件存储。"""


@blobs_group.command("verify")
@with_appcontext
def blobs_verify():
    """报告数据库引用但缺失或校验不符的文件（有则退出码为 1）。"""
    from ..services.maintenance import missing_or_corrupt_blobs

    missing, corrupt = missing_or_corrupt_blobs(db.session, get_blob_store())
    for sha256 in missing:
        click.echo(f"缺失 {sha256}")
    for sha256 in corrupt:
        click.echo(f"损坏 {sha256}")
    click.echo(f"缺失 {len(missing)} 个，损坏 {len(corrupt)} 个")
    if missing or corrupt:
        raise SystemExit(1)


@blobs_group.command("gc")
@click.option("--dry-run", is_flag=True, help="只列出将删除的文件，不删除。")
@click.option("--grace", default=3600, show_default=True, type=int,
              help="保留未满此秒数的无引用文件（可能正在上传）。")
@with_appcontext
def blobs_gc(dry_run, grace):
    """删除没有任何材料版本引用的文件（崩溃或删除档案后遗留）。"""
    from ..services.maintenance import unreferenced_blobs

    store = get_blob_store()
    orphans = unreferenced_blobs(db.session, store, grace)
    with click.progressbar(orphans, label="清理无引用的文件") as bar:
        for sha256 in bar:
            if not dry_run:
                store.delete(sha256)
    removed = getattr(store, "remove_stale_temporary_files", lambda seconds: 0)(grace) if not dry_run else 0
    verb = "将删除" if dry_run else "已删除"
    click.echo(f"{verb} {len(orphans)} 个无引用文件，{removed} 个临时文件")


COMMANDS = (workflow_group, blobs_group)
