"""Template filters: dossier fields in Chinese, Beijing time, waiting time, file sizes, masked ID numbers."""
from __future__ import annotations

from datetime import timedelta, timezone

from flask import Blueprint

from ..display import field_value, mask_id_number
from ..models import as_utc, utcnow

bp = Blueprint("filters", __name__)
BEIJING = timezone(timedelta(hours=8))


@bp.app_template_filter("field")
def field(dossier, name):
    """Render a dossier field as Chinese text."""
    return field_value(dossier, name)


@bp.app_template_filter("local_time")
def local_time(moment):
    """Render a UTC time as Beijing time."""
    return as_utc(moment).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if moment else ""


@bp.app_template_filter("waiting")
def waiting(since):
    """Render how long ago since was, in days and hours."""
    if since is None:
        return ""
    hours = int((utcnow() - as_utc(since)).total_seconds() // 3600)
    return f"{hours // 24}天{hours % 24}小时" if hours >= 24 else f"{hours}小时"


@bp.app_template_filter("filesize")
def filesize(size):
    """Render a byte count as KB or MB."""
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"


@bp.app_template_filter("masked")
def masked(id_number):
    """Render an ID number with its middle hidden."""
    return mask_id_number(id_number)
