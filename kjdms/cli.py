"""The `kjdms` command: init, demo, serve, worker, reindex, index, search, workflow, blobs (Flask's CLI conventions)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from .backends import get_blob_store, get_config, get_search_index, get_signing_key, get_workflow
from .extensions import db


def register(app: Flask) -> None:
    """Add the kjdms commands to app.cli."""
    for command in (init_command, demo_command, serve_command, worker_command, reindex_command, index_group,
                    search_command, workflow_group, blobs_group, import_legacy_command,
                    export_dossier_command, verify_package_command, package_key_command,
                    purge_expired_command):
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

    from .worker import start_thread

    app = current_app._get_current_object()
    if get_config().WORKER == "thread":
        # Text extraction and the outbox's safety net run beside the site; KJDMS_WORKER=external
        # leaves them to a `kjdms worker` process.
        start_thread(app)
    click.echo(f"kjdms 正在 http://{host}:{port}/ 提供服务（Ctrl+C 停止）")
    serve(app, host=host, port=port, threads=threads)


@click.command("worker")
@click.option("--once", is_flag=True, help="Do the work waiting now, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds to wait when idle.")
@with_appcontext
def worker_command(once, interval):
    """Extract text from new uploads and drain the search-index outbox (for multi-process deployments)."""
    import threading

    from flask import current_app

    from .worker import run, work_once

    app = current_app._get_current_object()
    if once:
        total_extracted = total_indexed = 0
        while (done := work_once(app)).anything:
            total_extracted, total_indexed = total_extracted + done.extracted, total_indexed + done.indexed
        click.echo(f"提取文字 {total_extracted} 份，更新索引 {total_indexed} 条")
        return
    click.echo("kjdms worker 已启动（Ctrl+C 停止）")
    report = lambda done: done.anything and click.echo(  # noqa: E731
        f"提取文字 {done.extracted} 份，更新索引 {done.indexed} 条")
    try:
        run(app, threading.Event(), poll_seconds=interval, on_round=report)
    except KeyboardInterrupt:
        click.echo("已停止")


@click.command("reindex")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Dossiers per committed chunk (memory is bounded by this).")
@with_appcontext
def reindex_command(chunk):
    """Rebuild the search index from the database beside the live one, then swap it in; resumes if interrupted."""
    from .services.reindex import reindex

    bar = None

    def started(resumed_after, total):
        nonlocal bar
        if resumed_after:
            click.echo(f"继续上次未完成的重建（已完成至档案 #{resumed_after}）")
        bar = click.progressbar(length=total, label="重建检索索引")
        bar.__enter__()

    try:
        count = reindex(db.session, get_search_index(), get_config().ID_HASH_KEY, chunk=chunk,
                        started=started, progress=lambda done: bar.update(done))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"索引已重建并启用：{count} 份档案")


@click.group("index")
def index_group():
    """Inspect and repair the search index."""


@index_group.command("check")
@click.option("--repair", is_flag=True, help="Rewrite the entries found missing, stale or extra.")
@with_appcontext
def index_check(repair):
    """Report dossiers missing from, or stale in, the search index (exit 1 if any)."""
    from .services.reindex import check_index, count_to_index, repair_index

    with click.progressbar(length=count_to_index(db.session), label="核对检索索引") as bar:
        check = check_index(db.session, get_search_index(), get_config().ID_HASH_KEY, progress=bar.update)
    for label, ids in (("missing", check.missing), ("stale", check.stale), ("extra", check.extra)):
        shown = " ".join(f"#{dossier_id}" for dossier_id in ids[:20])
        click.echo(f"{label}: {len(ids)}" + (f"  {shown}{' …' if len(ids) > 20 else ''}" if ids else ""))
    if check.ok:
        click.echo("索引与数据库一致")
        return
    if repair:
        click.echo(f"已修复 {repair_index(db.session, get_search_index(), get_config().ID_HASH_KEY, check)} 条")
        return
    click.echo("索引与数据库不一致：运行 kjdms index check --repair 修复，或 kjdms reindex 重建")
    raise SystemExit(1)


@index_group.command("status")
@with_appcontext
def index_status():
    """Print what waits for the worker: queued outbox rows, failed attempts, pending text extractions."""
    from sqlalchemy import func, select

    from .models import TEXT_FAILED, TEXT_PENDING, AttachmentVersion, IndexOutbox
    from .services.indexing import queued_count

    failing = db.session.scalar(select(func.count()).select_from(IndexOutbox).where(
        IndexOutbox.indexed_at.is_(None), IndexOutbox.attempts > 0))
    by_status = dict(db.session.execute(select(AttachmentVersion.text_status, func.count())
                                        .group_by(AttachmentVersion.text_status)).all())
    click.echo(f"索引中的档案：{get_search_index().doc_count()}")
    click.echo(f"待更新索引：{queued_count(db.session)}（其中失败重试 {failing}）")
    click.echo(f"待提取文字的材料：{by_status.get(TEXT_PENDING, 0)}，提取失败：{by_status.get(TEXT_FAILED, 0)}")


@click.command("search")
@click.argument("text", nargs=-1)
@click.option("--as", "as_user", metavar="USER", help="Search as this staff user (their regions and states).")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1))
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True)
@with_appcontext
def search_command(text, as_user, page, sort):
    """Print the dossiers matching TEXT (ID numbers masked); without --as, over every region and state."""
    from sqlalchemy import select

    from .display import mask_id_number
    from .models import User
    from .services.search import operator_grants, search_dossiers

    user = None
    if as_user:
        user = db.session.scalar(select(User).where(User.username == as_user))
        if user is None:
            raise click.BadParameter(f"没有用户名为“{as_user}”的工作人员账号", param_hint="--as")
    workflow = get_workflow()
    result = search_dossiers(db.session, get_search_index(), workflow, user, " ".join(text),
                             id_hash_key=get_config().ID_HASH_KEY, sort=sort, page=page,
                             grants=None if user else operator_grants(db.session, workflow))
    if not result.hits:
        click.echo("没有找到符合条件的档案")
        return
    for hit in result.hits:
        dossier = hit.dossier
        click.echo("\t".join([
            dossier.number, dossier.person.name or "", mask_id_number(dossier.person.id_number or ""),
            dossier.employer_name or "", dossier.region.path_name if dossier.region else "",
            workflow.definition.states[dossier.state].title + ("（信息变更）" if dossier.is_working_copy else ""),
        ]))
    click.echo(f"共 {result.total} 条，第 {result.page}/{result.pages} 页")


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


@click.command("export-dossier")
@click.argument("dossier_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the ZIP (default ./<dossier number>.zip); an existing file is never overwritten.")
@with_appcontext
def export_dossier_command(dossier_id, out):
    """Write the archival package of a dossier (its id, or its number like KJ0000000012) as a ZIP."""
    from .models import Dossier
    from .permissions import SystemActor
    from .services import audit
    from .services.archive import PackageError, export_package

    text = dossier_id.strip().upper()
    number = text[2:] if text.startswith("KJ") else text
    dossier = db.session.get(Dossier, int(number)) if number.isdigit() and len(number) <= 10 else None
    if dossier is None:
        raise click.ClickException(f"没有编号为“{dossier_id}”的档案")
    if dossier.is_working_copy:
        raise click.ClickException(f"这是信息变更单，请导出档案本身：kjdms export-dossier {dossier.number}")
    out = out or Path(f"{dossier.number}.zip")
    if out.exists():
        raise click.ClickException(f"{out} 已存在，不会覆盖：请用 --out 指定新文件")
    try:
        manifest = export_package(db.session, get_blob_store(), get_workflow(), dossier, out,
                                  generated_by="kjdms export-dossier", signing_key=get_signing_key())
    except FileExistsError:
        raise click.ClickException(f"{out} 已存在，不会覆盖：请用 --out 指定新文件") from None
    except PackageError as error:
        raise click.ClickException(f"档案包未能生成：{error}") from None
    audit.record(db.session, SystemActor(label="cli"), "dossier.export_package", "dossier", dossier.id,
                 files=len(manifest["files"]), sha256=_file_sha256(out), size=out.stat().st_size)
    db.session.commit()
    click.echo(f"已导出 {dossier.number}：{out}（{len(manifest['files'])} 个文件，{out.stat().st_size} 字节）")


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@click.command("verify-package")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A PEM public key (from kjdms package-key) the package must be signed with; may be repeated.")
def verify_package_command(path, public_keys):
    """Recompute every hash of an archival package and check its signature; name each file that fails (exit 1)."""
    from .services.archive import verify_package
    from .signing import KeyRefused, fingerprint

    trusted = [key.read_text(encoding="ascii", errors="replace") for key in public_keys] or None
    try:
        for key in trusted or ():
            fingerprint(key)
    except KeyRefused as error:
        raise click.ClickException(f"--public-key：{error}") from None
    result = verify_package(path, trusted)
    for label, names in (("缺少", result.missing), ("多余", result.extra), ("不一致", result.different)):
        for name in names:
            click.echo(f"{label}：{name}")
    for problem in result.problems:
        click.echo(f"问题：{problem}")
    if not result.ok:
        click.echo(f"验证未通过：{path}")
        raise SystemExit(1)
    checked = f"{result.checked} 个文件的 sha256 与清单一致"
    if result.trusted:
        click.echo(f"验证通过：{path}（{checked}；签名有效，出自所给公钥，指纹 {result.signer}）")
        return
    click.echo(f"验证通过（仅完整性，来源未核对）：{path}（{checked}）")
    if result.signature == "valid":
        click.echo(f"注意：签名密钥的指纹是 {result.signer}。包里附带的公钥谁都可以替换，只有与公布的公钥比对才能"
                   "证明档案包出自本机构：请用 --public-key 指定公布的公钥（kjdms package-key）。")
    else:
        click.echo("注意：档案包没有签名，无法证明出自本机构。")


@click.command("package-key")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the public key (PEM) here.")
@with_appcontext
def package_key_command(out):
    """Print the public key that signs this instance's archival packages, and its fingerprint, to publish."""
    from .signing import fingerprint, public_key_pem

    public = public_key_pem(get_signing_key())
    if out is not None:
        out.write_text(public, encoding="ascii")
    click.echo(public, nl=False)
    click.echo(f"指纹：{fingerprint(public)}")


def main():
    """Run the kjdms command."""
    from . import create_app

    FlaskGroup(create_app=create_app, help="kjdms 会计人员信息采集档案系统").main()


@click.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the refused rows (CSV: 行号, 字段, 原因); default FILE.errors.csv beside FILE.")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 50_000),
              help="Rows per committed chunk; an interrupted run resumes after the last one.")
@with_appcontext
def import_legacy_command(file, report, chunk):
    """Import the old provincial system's records (CSV or XLSX) as draft dossiers to confirm; rerunning changes nothing."""
    from .services.legacy_import import ImportFileError, default_report_path, import_legacy, write_report

    bar = None

    def started(total, resumed_after):
        nonlocal bar
        if resumed_after:
            click.echo(f"继续上次中断的导入（已提交至第 {resumed_after} 条数据）")
        bar = click.progressbar(length=max(total, 1), label="导入原系统数据")
        bar.__enter__()

    try:
        result = import_legacy(db.session, file, chunk=chunk, started=started,
                               progress=lambda rows: bar.update(rows))
    except ImportFileError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    report = report or default_report_path(file)
    write_report(report, result.refusals)
    click.echo(f"共 {result.rows_total} 行：导入 {result.imported}，已存在未改动 {result.unchanged}，"
               f"拒绝 {result.refused}（导入批次 #{result.run_id}）")
    click.echo(f"错误报告：{report}（{len(result.refusals)} 条原因）")
    if result.imported:
        click.echo("新导入的档案已排入检索索引队列：由 kjdms serve 的后台线程或 kjdms worker 写入索引")


LISTED_BEFORE_PROMPT = 20


@click.command("purge-expired")
@click.option("--dry-run", is_flag=True, help="List the dossiers that would be purged; change nothing.")
@click.option("--yes", is_flag=True, help="Purge without asking (for cron).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Purge at most N dossiers this run.")
@with_appcontext
def purge_expired_command(dry_run, yes, limit):
    """Purge the legacy dossiers not confirmed by the confirmation deadline (辽财会〔2019〕116号 二（三）)."""
    from .backends import get_drainer
    from .display import mask_id_number
    from .services.deadline_purge import (deadline_passed, expired_dossier_ids, imported_after_deadline,
                                          listed_dossiers, purge_expired)

    config = get_config()
    deadline = config.CONFIRMATION_DEADLINE
    if not deadline_passed(deadline):
        click.echo(f"信息更新和确认期限 {deadline.isoformat()} 尚未届满（北京时间次日起方可删除），未做任何处理")
        return
    dossier_ids = expired_dossier_ids(db.session, deadline, limit=limit)
    late = imported_after_deadline(db.session, deadline)
    if late:
        click.echo(f"另有 {late} 份原系统档案在期限届满后才导入，不予删除（须另行设定确认期限）")
    shown = dossier_ids if dry_run else dossier_ids[:LISTED_BEFORE_PROMPT]
    for start in range(0, len(shown), 1000):  # a thousand at a time: the first run may list a province
        for dossier in listed_dossiers(db.session, shown[start:start + 1000]):
            click.echo("\t".join([dossier.number, mask_id_number(dossier.person.id_number), dossier.person.name or "",
                                  dossier.region.path_name if dossier.region else "未确定地区"]))
    if len(dossier_ids) > len(shown):
        click.echo("……（完整名单请运行 kjdms purge-expired --dry-run）")
    click.echo(f"逾期（{deadline.isoformat()} 前）未进行信息更新和确认的原系统档案：{len(dossier_ids)} 份")
    if dry_run:
        click.echo("试运行：未做任何修改")
        return
    if dossier_ids and not yes and not click.confirm(
            f"删除以上 {len(dossier_ids)} 份档案的个人信息和证明材料，不可恢复。确定删除？", default=False):
        click.echo("已取消，未做任何修改")
        raise SystemExit(1)
    with click.progressbar(length=len(dossier_ids), label="删除逾期未确认档案") as bar:
        run = purge_expired(db.session, get_workflow(), get_blob_store(), get_search_index(), get_drainer().drain,
                            id_hash_key=config.ID_HASH_KEY, deadline=deadline, dossier_ids=dossier_ids,
                            limit=limit, progress=bar.update)
    click.echo(f"已删除 {len(run.purged)} 份，跳过 {len(run.skipped)} 份")
    for dossier_id, reason in run.skipped:
        click.echo(f"  跳过 KJ{dossier_id:010d}：{reason}")
    if run.index_pending:
        click.echo(f"警告：{run.index_pending} 份已删除档案的检索索引尚未更新，请检查 kjdms index status")
    if run.wal_truncated is False:
        click.echo("警告：数据库日志（WAL）未能清空（有其他连接正在读取），下次运行时再次清理")
    if run.interrupted:
        click.echo("已中断：已完成的删除保留，其余档案下次运行时继续")
        raise SystemExit(130)
