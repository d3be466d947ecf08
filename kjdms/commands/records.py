"""Records lifecycle: legacy import, deadline purge, archival packages and their signing key."""
from __future__ import annotations

import hashlib
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..backends import get_blob_store, get_config, get_drainer, get_search_index, get_signing_key, get_workflow
from ..extensions import db

LISTED_BEFORE_PROMPT = 20


@click.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="被拒行的报告（CSV：行号, 字段, 原因）写到哪里；默认为 FILE 旁的 FILE.errors.csv。")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 50_000),
              help="每次提交的行数；中断后从最后提交的一批之后继续。")
@with_appcontext
def import_legacy_command(file, report, chunk):
    """导入原系统数据（CSV 或 XLSX）为待确认的档案；重复运行不做改动。"""
    from ..services.legacy_import import ImportFileError, default_report_path, import_legacy, write_report

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


@click.command("purge-expired")
@click.option("--dry-run", is_flag=True, help="只列出将删除的档案，不做修改。")
@click.option("--yes", is_flag=True, help="不再询问，直接删除（供定时任务使用）。")
@click.option("--limit", type=click.IntRange(1), default=None, help="本次最多删除 N 份。")
@with_appcontext
def purge_expired_command(dry_run, yes, limit):
    """删除逾期未更新确认的原系统档案（辽财会〔2019〕116号 二（三））。"""
    from ..display import mask_id_number
    from ..services import settings
    from ..services.deadline_purge import (deadline_passed, expired_dossier_ids, imported_after_deadline,
                                           listed_dossiers, purge_expired)

    config = get_config()
    deadline = settings.effective(db.session, config).CONFIRMATION_DEADLINE
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


@click.command("export-dossier")
@click.argument("dossier_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="ZIP 写到哪里（默认 ./<档案编号>.zip）；已有的文件不会被覆盖。")
@with_appcontext
def export_dossier_command(dossier_id, out):
    """把一份档案（编号如 KJ0000000012 或内部 id）导出为档案包 ZIP。"""
    from ..models import Dossier
    from ..permissions import SystemActor
    from ..services import disclosures
    from ..services.archive import PackageError, export_package

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
    disclosures.package_exported(db.session, SystemActor(label="cli"), dossier, files=len(manifest["files"]),
                                 sha256=_file_sha256(out), size=out.stat().st_size)
    click.echo(f"已导出 {dossier.number}：{out}（{len(manifest['files'])} 个文件，{out.stat().st_size} 字节）")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@click.command("verify-package")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="档案包必须由其签名的公钥（PEM，kjdms package-key 导出）；可重复。")
def verify_package_command(path, public_keys):
    """重算档案包的每个哈希并核对签名，逐一列出不符的文件（有则退出码为 1）。"""
    from ..services.archive import verify_package
    from ..signing import KeyRefused, fingerprint

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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="同时把公钥（PEM）写到此文件。")
@with_appcontext
def package_key_command(out):
    """显示本机构档案包签名公钥及其指纹，供公布。"""
    from ..signing import fingerprint, public_key_pem

    public = public_key_pem(get_signing_key())
    if out is not None:
        out.write_text(public, encoding="ascii")
    click.echo(public, nl=False)
    click.echo(f"指纹：{fingerprint(public)}")


COMMANDS = (import_legacy_command, purge_expired_command, export_dossier_command, verify_package_command,
            package_key_command)
