"""The `kjdms` command: init, demo, serve, workflow show, blobs gc/verify (Flask's CLI conventions)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from .backends import get_blob_store, get_config, get_workflow
from .extensions import db


def register(app: Flask) -> None:
    """Add the kjdms commands to app.cli."""
    for command in (init_command, demo_command, serve_command, workflow_group, blobs_group):
        app.cli.add_command(command)


def upgrade_schema() -> bool:
    """Create or upgrade the schema to the newest migration; return True if the database was new."""
    from flask_migrate import upgrade
    from sqlalchemy import inspect

    was_new = not inspect(db.engine).has_table("alembic_version")
    upgrade()
    return was_new


@click.command("init")
@with_appcontext
def init_command():
    """Create or upgrade the database schema and load the reference data."""
    from .services.reference import load_regions

    was_new = upgrade_schema()
    added, changed = load_regions(db.session)
    click.echo(f"数据库{'已创建' if was_new else '已是最新结构'}：{get_config().DATABASE_URL.split('?')[0]}")
    click.echo(f"地区：新增 {added}，更新 {changed}")


@click.command("demo")
@click.option("--reset-passwords", is_flag=True, help="Give the demo staff new passwords and print them.")
@with_appcontext
def demo_command(reset_passwords):
    """Load demo users for every role and dossiers in every state; print the sign-ins."""
    from .services.demo import demo_loaded, load_demo, reset_demo_passwords

    if demo_loaded(db.session):
        if not reset_passwords:
            click.echo("演示数据已存在。需要新的登录密码请运行：kjdms demo --reset-passwords")
            return
        credentials = reset_demo_passwords(db.session)
    else:
        with click.progressbar(length=1, label="载入演示数据") as bar:
            credentials = load_demo(db.session, get_workflow(), get_blob_store(),
                                    get_config().ID_HASH_KEY)
            bar.update(1)
    click.echo("演示账号（密码只显示这一次）：")
    for credential in credentials:
        password = credential.password or "（未设置，首次登录时设置）"
        click.echo(f"  {credential.role:<15} {credential.sign_in:<34} {password:<12} {credential.note}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@with_appcontext
def serve_command(host, port, threads):
    """Serve the web application with waitress."""
    from flask import current_app
    from waitress import serve

    click.echo(f"kjdms 正在 http://{host}:{port}/ 提供服务（Ctrl+C 停止）")
    serve(current_app._get_current_object(), host=host, port=port, threads=threads)


@click.group("workflow")
def workflow_group():
    """Inspect the dossier workflow."""


@workflow_group.command("show")
@with_appcontext
def workflow_show():
    """Print the workflow as a Mermaid state diagram."""
    click.echo(get_workflow().mermaid(), nl=False)


@click.group("blobs")
def blobs_group():
    """Check and repair the blob store against the database."""


@blobs_group.command("verify")
@with_appcontext
def blobs_verify():
    """Report blobs that rows point at but that are missing or fail their hash."""
    from .services.maintenance import missing_or_corrupt_blobs

    missing, corrupt = missing_or_corrupt_blobs(db.session, get_blob_store())
    for sha256 in missing:
        click.echo(f"missing {sha256}")
    for sha256 in corrupt:
        click.echo(f"corrupt {sha256}")
    click.echo(f"{len(missing)} missing, {len(corrupt)} corrupt")
    if missing or corrupt:
        raise SystemExit(1)


@blobs_group.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed, remove nothing.")
@click.option("--grace", default=3600, show_default=True, type=int,
              help="Keep unreferenced blobs younger than this many seconds (uploads in flight).")
@with_appcontext
def blobs_gc(dry_run, grace):
    """Remove blobs no attachment version refers to (left by a crash or a purge)."""
    from .services.maintenance import unreferenced_blobs

    store = get_blob_store()
    orphans = unreferenced_blobs(db.session, store, grace)
    with click.progressbar(orphans, label="清理无引用的文件") as bar:
        for sha256 in bar:
            if not dry_run:
                store.delete(sha256)
    removed = getattr(store, "remove_stale_temporary_files", lambda seconds: 0)(grace) if not dry_run else 0
    click.echo(f"{'would remove' if dry_run else 'removed'} {len(orphans)} blobs, {removed} temporary files")


def main():
    """Run the kjdms command."""
    from . import create_app

    FlaskGroup(create_app=create_app, help="kjdms 会计人员信息采集档案系统").main()
