"""Keep an instance sound: blobs verify/gc, workflow show (Flask-Migrate adds `kjdms db`)."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..backends import get_blob_store, get_config, get_workflow
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


@blobs_group.command("migrate")
@click.option("--to", "target", type=click.Choice(["s3"]), required=True, help="目标存储（按 KJDMS_S3_* 设置）。")
@with_appcontext
def blobs_migrate(target):
    """把本地文件存储中数据库引用的文件复制到 S3 并逐一核对（可中断，再次运行时只复制未复制的）。"""
    from ..backends import s3_blob_store
    from ..blobs import BlobCorrupted, LocalBlobStore
    from ..services.maintenance import migrate_blobs, referenced_hashes

    config = get_config()
    try:
        store = s3_blob_store(config)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    store.ensure_bucket()
    with click.progressbar(length=len(referenced_hashes(db.session)), label="复制到 S3") as bar:
        try:
            result = migrate_blobs(db.session, LocalBlobStore(config.BLOB_DIR), store, progress=bar.update)
        except BlobCorrupted as error:
            raise click.ClickException(f"文件 {error.sha256} 已损坏，未复制：请先运行 kjdms blobs verify") from None
    click.echo(f"已复制并核对 {result.copied} 个，目标中已有 {result.present} 个，本地缺失 {len(result.missing)} 个")
    for sha256 in result.missing:
        click.echo(f"缺失 {sha256}")
    if result.missing:
        raise SystemExit(1)
    click.echo("完成后把 KJDMS_BLOB_STORE 设为 s3 并重启服务；本地文件可在核对无误后删除。")


COMMANDS = (workflow_group, blobs_group)
