"""Back up a whole instance, check a backup, restore one into an empty instance."""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..backends import get_blob_store, get_config, get_search_index, get_signing_key
from ..extensions import db

PASSPHRASE_VARIABLE = "KJDMS_BACKUP_PASSPHRASE"


def _passphrase(passphrase_file: Path | None) -> str | None:
    """Return the passphrase from the file given, else from the environment, else None."""
    if passphrase_file is not None:
        return passphrase_file.read_text("utf-8").strip()
    return os.environ.get(PASSPHRASE_VARIABLE) or None


def _progress():
    """Return a progress callback printing each stage at every tenth of the way."""
    shown = {}

    def report(label: str, done: int, total: int | None) -> None:
        step = (10 * done // total) if total else 0
        if shown.get(label) != step:
            shown[label] = step
            click.echo(f"  {label}：{done}/{total}", err=True)
    return report


def _refused(error):
    raise click.ClickException(str(error)) from None


passphrase_option = click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"口令所在的文件（也可用环境变量 {PASSPHRASE_VARIABLE}）。")


@click.group("backup")
def backup_group():
    """备份整个实例、核验备份、恢复到空实例。"""


@backup_group.command("create")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@passphrase_option
@with_appcontext
def backup_create(destination, passphrase_file):
    """备份数据库、文件和密钥到目录（网站可照常运行；中断后再次运行即继续，只复制新文件）。"""
    from ..services.backup import BackupRefused, Keys, create_backup
    from ..services.backup_keys import PassphraseRefused

    config = get_config()
    signing_key = get_signing_key()  # made now if it never was, so that the backup holds it
    keys = Keys(config.SECRET_KEY, config.ID_HASH_KEY, config.PACKAGE_SIGNING_KEY_FILE.read_text("ascii"))
    try:
        result = create_backup(db.engine, db.session, get_blob_store(), destination, keys, signing_key,
                               passphrase=_passphrase(passphrase_file), progress=_progress())
    except (BackupRefused, PassphraseRefused) as error:
        _refused(error)
    db.session.commit()
    rows = sum(result.counts.values())
    click.echo(f"{'已继续并完成' if result.resumed else '已完成'}备份 {result.snapshot}")
    click.echo(f"时间点 {result.instant.isoformat()}：{len(result.counts)} 张表 {rows} 行，"
               f"文件 {result.blobs} 个（新复制 {result.blobs_copied} 个）")
    click.echo("注意：备份含完整身份证号等个人信息和本实例的密钥，仅本账户可读；请异地保存，并定期做恢复演练。")


@backup_group.command("verify")
@click.argument("destination", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--snapshot", default=None, help="要核验的备份（目录名）；默认最新的一次。")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="公布的公钥（PEM），签名须出自其中之一（可多次给出）。")
@with_appcontext
def backup_verify(destination, snapshot, public_keys):
    """不恢复，核对备份的清单、签名和每个文件的散列；不符时逐一列出并退出码为 1。"""
    from ..services.backup import BackupRefused, verify_backup

    trusted = [path.read_text("ascii") for path in public_keys] or None
    try:
        check = verify_backup(destination, snapshot, trusted, progress=_progress())
    except BackupRefused as error:
        _refused(error)
    for problem in check.problems():
        click.echo(problem)
    if not check.ok:
        click.echo(f"备份 {check.snapshot.name} 未通过核验")
        raise SystemExit(1)
    signer = f"，签名密钥指纹 {check.files.signer}" if check.files.signer else ""
    click.echo(f"备份 {check.snapshot.name} 核验通过：{check.files.checked} 个数据文件，{check.blobs_checked} 个文件{signer}")


@backup_group.command("restore")
@click.argument("destination", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--snapshot", default=None, help="要恢复的备份（目录名）；默认最新的一次。")
@passphrase_option
@with_appcontext
def backup_restore(destination, snapshot, passphrase_file):
    """把备份恢复到空的实例：升级数据库结构、重建索引，并核对文件、索引和审计日志（中断后再次运行即继续）。"""
    from ..schema import upgrade_schema
    from ..services import audit, settings
    from ..services.backup import BackupRefused, find_snapshot, read_manifest
    from ..services.backup_keys import PassphraseRefused
    from ..services.reindex import reindex
    from ..services.restore import check_restored, load_database, put_keys, read_keys, restore_blobs, start_restore

    config = get_config()
    try:
        folder = find_snapshot(destination, snapshot)
        keys = read_keys(folder, _passphrase(passphrase_file))
        _refuse_other_environment_keys(keys)
        plan = start_restore(config.STORAGE_DIR, folder, db.engine, get_blob_store(), config.PACKAGE_SIGNING_KEY_FILE)
        click.echo(f"{'继续' if plan.done else '开始'}恢复备份 {folder.name}（时间点 {read_manifest(folder)['instant']}）")
        if "keys" not in plan.done:
            put_keys(keys, config.STORAGE_DIR, config.PACKAGE_SIGNING_KEY_FILE)
            plan.finish("keys")
        if "database" not in plan.done:
            upgrade_schema(read_manifest(folder)["schema_revision"])
            db.session.remove()
            load_database(db.engine, folder, progress=_progress())
            plan.finish("database")
        if "blobs" not in plan.done:
            restore_blobs(destination, folder, get_blob_store(), progress=_progress())
            plan.finish("blobs")
    except (BackupRefused, PassphraseRefused) as error:
        _refused(error)
    upgrade_schema()
    audit.record(db.session, None, "backup.restore", "instance", None, snapshot=folder.name,
                 destination=str(destination))
    db.session.commit()
    # Indexed with the restored ID-hash key: this process was started with the instance's own.
    click.echo(f"已重建检索索引：{reindex(db.session, get_search_index(), keys.id_hash_key)} 份档案")
    check = check_restored(db.session, get_blob_store(), get_search_index(), keys.id_hash_key,
                           settings.effective(db.session, config).CONFIRMATION_DEADLINE)
    plan.marker.unlink()
    _report(check)


def _refuse_other_environment_keys(keys) -> None:
    """Refuse when a key set in the environment would override the restored one (it lives outside the files)."""
    for variable, value in (("KJDMS_SECRET_KEY", keys.secret_key), ("KJDMS_ID_HASH_KEY", keys.id_hash_key)):
        if os.environ.get(variable) and os.environ[variable] != value:
            raise click.ClickException(f"环境变量 {variable} 与备份中的密钥不同：请删去它，或设为备份中的值，再恢复")


def _report(check) -> None:
    """Print what the restore's checks found; exit 1 if anything failed."""
    click.echo(f"文件核对：缺失 {len(check.missing_blobs)} 个，损坏 {len(check.corrupt_blobs)} 个")
    index = check.index
    click.echo(f"索引核对：缺失 {len(index.missing)}，过期 {len(index.stale)}，多余 {len(index.extra)}")
    click.echo(f"审计日志：{check.audit_problem or f'核对通过，{check.audit_rows} 条'}")
    if check.expired:
        click.echo(f"警告：恢复的数据中有 {len(check.expired)} 份逾期未确认的档案。备份时间点之后已清除的人员会随旧备份回来；"
                   "如需再次清除，请运行 kjdms purge-expired：")
        for dossier in check.expired:
            click.echo(f"  {dossier.number}\t{dossier.person.name}\t{dossier.region.name if dossier.region else ''}")
    click.echo("恢复完成：请重新启动网站服务，使其使用恢复的密钥。" if check.ok else "恢复后的核对未通过")
    if not check.ok:
        raise SystemExit(1)


COMMANDS = (backup_group,)
