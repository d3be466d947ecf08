"""The search index: reindex, index check/status, search."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..backends import get_config, get_search_index, get_workflow
from ..extensions import db

SHOWN_IDS = 20


@click.command("reindex")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="每次提交的档案数（内存占用以此为限）。")
@with_appcontext
def reindex_command(chunk):
    """在现有索引旁从数据库重建检索索引并切换启用；中断后可继续。"""
    from ..services.reindex import reindex

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
    """核对、修复检索索引，查看待处理的工作。"""


@index_group.command("check")
@click.option("--repair", is_flag=True, help="重写查出缺失、过期或多余的条目，并删除崩溃遗留的旧索引版本。")
@with_appcontext
def index_check(repair):
    """报告索引中缺失、过期或多余的档案（有则退出码为 1）。"""
    from ..services.reindex import check_index, count_to_index, repair_index

    if repair:
        # A generation a crash left behind holds text that no later purge would reach.
        for name in get_search_index().remove_stale_generations():
            click.echo(f"已删除旧的索引版本：{name}")
    with click.progressbar(length=count_to_index(db.session), label="核对检索索引") as bar:
        check = check_index(db.session, get_search_index(), get_config().ID_HASH_KEY, progress=bar.update)
    for label, ids in (("缺失", check.missing), ("过期", check.stale), ("多余", check.extra)):
        shown = " ".join(f"#{dossier_id}" for dossier_id in ids[:SHOWN_IDS])
        click.echo(f"{label}：{len(ids)}" + (f"  {shown}{' …' if len(ids) > SHOWN_IDS else ''}" if ids else ""))
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
    """显示索引中的档案数、待更新索引的条目和待提取文字的材料。"""
    from sqlalchemy import func, select

    from ..models import TEXT_FAILED, TEXT_PENDING, AttachmentVersion, IndexOutbox
    from ..services.indexing import queued_count

    failing = db.session.scalar(select(func.count()).select_from(IndexOutbox).where(
        IndexOutbox.indexed_at.is_(None), IndexOutbox.attempts > 0))
    by_status = dict(db.session.execute(select(AttachmentVersion.text_status, func.count())
                                        .group_by(AttachmentVersion.text_status)).all())
    click.echo(f"索引中的档案：{get_search_index().doc_count()}")
    click.echo(f"待更新索引：{queued_count(db.session)}（其中失败重试 {failing}）")
    click.echo(f"待提取文字的材料：{by_status.get(TEXT_PENDING, 0)}，提取失败：{by_status.get(TEXT_FAILED, 0)}")


@click.command("search")
@click.argument("text", nargs=-1)
@click.option("--as", "as_user", metavar="USER", help="以该工作人员的身份检索（其地区和可见状态）。")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1), help="页码。")
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True,
              help="按相关度或最近变更排序。")
@with_appcontext
def search_command(text, as_user, page, sort):
    """列出与 TEXT 匹配的档案（身份证号打码）；不加 --as 时检索全部地区和状态。"""
    from sqlalchemy import select

    from ..display import mask_id_number
    from ..models import User
    from ..services.search import operator_grants, search_dossiers

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


@click.command("extract")
@click.option("--retry-failed", is_flag=True, help="先把失败原因已消除的材料重新排队（如已安装 tesseract）。")
@with_appcontext
def extract_command(retry_failed):
    """提取待处理材料的文字；--retry-failed 重试失败原因已消除的材料。"""
    from ..backends import get_blob_store
    from ..services.text_extraction import extract_pending, retry_failed as queue_again

    config = get_config()
    if retry_failed:
        click.echo(f"重新排队：{queue_again(db.session, get_blob_store(), ocr=config.OCR)} 份")
    total = 0
    while (done := extract_pending(db.session, get_blob_store(), ocr=config.OCR, limit=20)):
        total += done
    click.echo(f"提取文字：{total} 份")


COMMANDS = (reindex_command, index_group, search_command, extract_command)
