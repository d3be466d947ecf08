"""The home page: what the site is and where to ask."""
from flask import Blueprint, render_template
from sqlalchemy import select

from ..extensions import db
from ..models import Region

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """Show what the platform is for and the consultation contacts."""
    contacts = db.session.scalars(
        select(Region).where(Region.phone.is_not(None)).order_by(Region.sort_order)).all()
    return render_template("home/index.html", contacts=contacts)


@bp.after_app_request
def safe_headers(response):
    """Forbid sniffing, framing and caching of personal pages, on every response."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response
