"""Reports that leave the system: the person-level report to the Ministry of Finance, and the list of past ones."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..backends import get_config, get_signing_key, get_workflow
from ..extensions import db


@click.group("report")
def report_group():
    """生成、查看上报财政部的会计人员信息报告。"""


@report_group.command("mof")
@click.option("--as-of", "as_of", required=True, type=click.DateTime(["%Y-%m-%d"]), help="截至日期（北京时间当日结束）。")
@click.option("--since", default=None, help="增量报告：以此前的报告编号为基准（须在 --out 目录中）。")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="报告写到此目录下。")
@with_appcontext
def report_mof(as_of, since, out):
    """生成上报财政部的报告（JSON Lines、CSV 与签名清单）；含完整身份证号，仅本人可读。"""
    from ..services.mof_report import ReportRefused, count_reported, reported_states, write_report
    from ..services.statistics import workflow_names

    workflow, day = get_workflow(), as_of.date()
    states = reported_states(workflow)
    shown = 0

    def progress(written: int) -> None:
        nonlocal shown
        bar.update(written - shown)
        shown = written

    # The whole is today's count of reported dossiers: for a past day it is an estimate.
    with click.progressbar(length=max(count_reported(db.session, day, states), 1), label="写报告（人）") as bar:
        try:
            result = write_report(db.session, day=day, out=out, signing_key=get_signing_key(),
                                  id_hash_key=get_config().ID_HASH_KEY, reported_states=states,
                                  approved_state=workflow_names(workflow).approved, since=since, progress=progress)
        except ReportRefused as error:
            raise click.ClickException(str(error)) from None
    db.session.commit()
    counts = result.counts
    click.echo(f"报告 {result.report_id} 已写到 {result.folder}")
    click.echo(f"共 {counts['persons']} 人：新增 {counts['added']}，变更 {counts['changed']}，"
               f"未变 {counts['unchanged']}，删除 {counts['removed']}")
    click.echo("注意：文件含完整身份证号等敏感个人信息，仅本账户可读；请按规定传送并妥善保管。")
    click.echo(f"核验：kjdms verify-package {result.folder} --public-key <公布的公钥>")


@report_group.command("list")
@with_appcontext
def report_list():
    """列出已生成的报告（来自审计记录）。"""
    from ..local_time import local_text
    from ..services.report_runs import past_reports

    reports = past_reports(db.session)
    if not reports:
        click.echo("尚未生成报告")
    for report in reports:
        click.echo(f"{report.report_id}\t截至 {report.as_of}\t基准 {report.follows or '（全量）'}\t"
                   f"{report.counts['persons']} 人\t{local_text(report.at)}\t{report.by}")


COMMANDS = (report_group,)
