"""The report to the Ministry of Finance from the province administrator's page: asking, running, listing, downloading.

A run is asked for in one request (a ReportRun row and an audit event), carried out elsewhere (a thread of the web
process, see views/reports.py) with its progress written as it goes, and marked done in the same commit as the
report's own audit event, after its files have moved into place whole (mof_report.write_report).
"""
from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from ..models import AuditEvent, ReportRun, User, as_utc, utcnow
from . import audit
from .mof_report import ReportRefused, count_reported, report_id_for, write_report
from .transaction import committing

log = logging.getLogger(__name__)
RUNNING, DONE, FAILED = "running", "done", "failed"
# A running run whose progress has not moved for this long was interrupted (its process ended).
STALE_AFTER = timedelta(minutes=10)
REPORT_ID = re.compile(r"MOF-\d{8}(-SINCE-MOF-\d{8})*")
CRASHED = "生成中断，未留下报告文件；请重新生成，仍不成功请联系系统管理员查看服务日志"


@dataclass(frozen=True)
class PastReport:
    """A report generated in full: what `kjdms report list` shows, from the audit log."""

    report_id: str
    as_of: str
    follows: str | None
    counts: dict
    at: datetime
    by: str


def past_reports(session) -> list[PastReport]:
    """Return every report generated, the oldest first."""
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "mof_report.generate")
                             .order_by(AuditEvent.id)).all()
    return [PastReport(e.detail["report_id"], e.detail["as_of"], e.detail.get("follows"), e.detail["counts"],
                       e.occurred_at, e.actor_label) for e in events]


def is_stale(run: ReportRun, now: datetime | None = None) -> bool:
    """Tell whether a running run stopped moving: its process ended before it finished."""
    return run.state == RUNNING and (now or utcnow()) - as_utc(run.updated_at) > STALE_AFTER


def runs(session, limit: int = 10) -> list[ReportRun]:
    """Return the latest runs asked for on the page, the newest first."""
    return session.scalars(select(ReportRun).order_by(ReportRun.id.desc()).limit(limit)).all()


def start_run(session, actor, *, day: date, since: str | None, today: date, reported_states, out: Path) -> ReportRun:
    """Record a run of the report for day (incremental after since, in out), refused with a reason naming the field."""
    if day > today:
        raise ReportRefused("截至日期：不能晚于今天")
    if since is not None:
        base = next((report for report in past_reports(session) if report.report_id == since), None)
        if base is None:
            raise ReportRefused("基准报告：请从已生成的报告中选择")
        if base.as_of >= day.isoformat():
            raise ReportRefused(f"基准报告：{since} 截至 {base.as_of}，增量报告的截至日期须晚于它")
        if report_folder(session, out, since) is None:
            raise ReportRefused(f"基准报告：{since} 由命令行写到了其他目录，不在报告目录中，不能作为基准")
    active = [run for run in session.scalars(select(ReportRun).where(ReportRun.state == RUNNING)) if not is_stale(run)]
    if active:
        raise ReportRefused(f"报告 {active[0].report_id} 正在生成，请等它完成后再生成")
    with committing(session):
        run = ReportRun(report_id=report_id_for(day, since), as_of=day, since=since, state=RUNNING, processed=0,
                        total=count_reported(session, day, reported_states), requested_by_id=actor.id,
                        requested_by_label=actor.label)
        session.add(run)
        session.flush()
        audit.record(session, actor, "mof_report.request", "report_run", run.id, report_id=run.report_id,
                     as_of=day.isoformat(), follows=since)
    return run


def execute_run(session, run_id: int, *, out: Path, signing_key, id_hash_key: str, reported_states,
                approved_state: str) -> ReportRun:
    """Write the run's report; mark it done with the report's audit event, or failed with the reason."""
    run = session.get(ReportRun, run_id)
    actor = session.get(User, run.requested_by_id) if run.requested_by_id else None

    def progress(written: int) -> None:
        # On a connection of its own: the report's transaction commits only when it is whole.
        with session.get_bind().begin() as connection:
            connection.execute(update(ReportRun).where(ReportRun.id == run_id)
                               .values(processed=written, updated_at=utcnow()))

    try:
        result = write_report(session, day=run.as_of, out=out, signing_key=signing_key, id_hash_key=id_hash_key,
                              reported_states=reported_states, approved_state=approved_state, since=run.since,
                              actor=actor, progress=progress)
        run = session.get(ReportRun, run_id)
        run.state, run.processed, run.finished_at = DONE, result.counts["persons"], utcnow()
        run.updated_at = run.finished_at
        session.commit()
    except Exception as error:
        session.rollback()
        if not isinstance(error, ReportRefused):
            log.exception("report run %s failed", run_id)
        reason = str(error) if isinstance(error, ReportRefused) else CRASHED
        with session.get_bind().begin() as connection:
            connection.execute(update(ReportRun).where(ReportRun.id == run_id).values(
                state=FAILED, error=reason, updated_at=utcnow(), finished_at=utcnow()))
        session.expire_all()
    return session.get(ReportRun, run_id)


def report_folder(session, out: Path, report_id: str) -> Path | None:
    """Return the folder of a report generated in full, or None for anything else (an unknown or a malformed id)."""
    if not REPORT_ID.fullmatch(report_id or "") or report_id not in {r.report_id for r in past_reports(session)}:
        return None
    folder = out / report_id
    return folder if folder.is_dir() else None


def write_archive(folder: Path, target) -> int:
    """Write the report's files into target as one ZIP under a folder of the report's name; return the file count."""
    files = sorted(path for path in folder.iterdir() if path.is_file())
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, f"{folder.name}/{path.name}")
    return len(files)


def record_download(session, actor, report_id: str, *, size: int, sha256: str) -> None:
    """Write who took the report's files (full ID numbers) to the audit log, and commit."""
    with committing(session):
        audit.record(session, actor, "mof_report.download", "mof_report", None, report_id=report_id, size=size,
                     sha256=sha256)
