"""The province administrator's page for the report to the Ministry of Finance: past reports, a new one, its files."""
from __future__ import annotations

import tempfile
import threading
from datetime import date
from functools import wraps

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..backends import get_config, get_signing_key, get_workflow
from ..extensions import db
from ..forms import ActionForm
from ..local_time import local_today
from ..models import ReportRun
from ..services import report_runs
from ..services.mof_report import ReportRefused, reported_states
from ..services.staff import is_province_administrator
from ..services.statistics import workflow_names
from .files import measured, zip_download

bp = Blueprint("reports", __name__, url_prefix="/reports")
DATE_FORMAT_ERROR = "截至日期：请按“年-月-日”填写，如 2019-06-30"


def province_administrator_required(view):
    """Let only administrators of the whole province through; other signed-in users get 403."""
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not is_province_administrator(current_user):
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def _page(status: int = 200, as_of: str = "", since: str = ""):
    past = report_runs.past_reports(db.session)
    folder = get_config().REPORT_DIR
    return render_template(
        "reports/index.html", past=past[::-1], runs=report_runs.runs(db.session), form=ActionForm(),
        on_disk={report.report_id for report in past if (folder / report.report_id).is_dir()},
        is_stale=report_runs.is_stale, today=local_today(), as_of=as_of or local_today().isoformat(), since=since,
    ), status


@bp.get("/")
@province_administrator_required
def index():
    """List the reports generated and the latest runs; offer a full or incremental report for a day."""
    return _page()


@bp.post("/generate")
@province_administrator_required
def generate():
    """Start the report for the day asked, off the request; the page then follows its progress."""
    if not ActionForm().validate_on_submit():
        abort(400)
    asked, since = request.form.get("as_of", "").strip(), request.form.get("since", "").strip() or None
    try:
        day = date.fromisoformat(asked)
    except ValueError:
        flash(DATE_FORMAT_ERROR, "danger")
        return _page(422, asked[:10], since or "")
    workflow = get_workflow()
    try:
        run = report_runs.start_run(db.session, current_user, day=day, since=since, today=local_today(),
                                    reported_states=reported_states(workflow), out=get_config().REPORT_DIR)
    except ReportRefused as error:
        flash(str(error), "danger")
        return _page(422, asked, since or "")
    _run_in_background(current_app._get_current_object(), run.id)
    flash(f"已开始生成报告 {run.report_id}，完成后可在下方下载。", "success")
    return redirect(url_for("reports.index"))


def _run_in_background(app, run_id: int) -> threading.Thread:
    """Write the report in a thread of this process: a long run must not hold the request."""
    config = app.extensions["kjdms"].config

    def work():
        with app.app_context():
            workflow = get_workflow()
            try:
                report_runs.execute_run(db.session, run_id, out=config.REPORT_DIR, signing_key=get_signing_key(),
                                        id_hash_key=config.ID_HASH_KEY, reported_states=reported_states(workflow),
                                        approved_state=workflow_names(workflow).approved)
            finally:
                db.session.remove()

    thread = threading.Thread(target=work, name=f"report-run-{run_id}", daemon=True)
    thread.start()
    return thread


@bp.get("/runs/<int:run_id>")
@province_administrator_required
def progress(run_id):
    """Answer a run's state and progress as JSON, for the page to follow."""
    run = db.session.get(ReportRun, run_id)
    if run is None:
        abort(404)
    stale = report_runs.is_stale(run)
    return jsonify(state="failed" if stale else run.state, report_id=run.report_id, processed=run.processed,
                   total=run.total, percent=round(100 * run.processed / run.total) if run.total else 0,
                   error=report_runs.CRASHED if stale else run.error)


@bp.post("/<report_id>/download")
@province_administrator_required
def download(report_id):
    """Send the report's signed files as one ZIP and write who took them to the audit log (full ID numbers)."""
    folder = report_runs.report_folder(db.session, get_config().REPORT_DIR, report_id)
    if folder is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    # On disk, not in memory: a province's report runs to hundreds of megabytes. The file has no name and is
    # readable by this process only.
    spool = tempfile.TemporaryFile()
    report_runs.write_archive(folder, spool)
    size, sha256 = measured(spool)
    report_runs.record_download(db.session, current_user, report_id, size=size, sha256=sha256)
    return zip_download(spool, size, f"{report_id}-上报财政部.zip", f"{report_id}.zip")
