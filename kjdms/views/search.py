"""The staff's dossier search: one box, facets to narrow, results within the regions and states they may view."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from ..backends import get_config, get_search_index, get_workflow
from ..display import mask_id_number
from ..extensions import db
from ..models import Region
from ..search import FACETS
from ..services import disclosures
from ..services.indexing import queued_count
from ..services.search import (CREDIT_LABELS, FACET_TITLES, MAX_QUERY_CHARACTERS, SearchPage, search_dossiers,
                               split_id_numbers)
from ..validators import ValidationError, check_text, clean_filename
from ..vocabulary import QUALIFICATION_LEVELS, STAFF_ROLES
from . import int_arg, staff_role_required

bp = Blueprint("search", __name__, url_prefix="/search")
SORT_TITLES = {"relevance": "相关度", "date": "最近办理"}
MAX_ID_NUMBERS = 3
MAX_PAGE = 10_000


def _cipher() -> Fernet:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode("utf-8") if isinstance(secret, str) else secret
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"kjdms search id numbers\0" + secret).digest()))


def seal_id_numbers(numbers: list[str]) -> str:
    """Return the ID numbers as an opaque token for links, so no page or address shows them."""
    return _cipher().encrypt(",".join(numbers).encode("ascii")).decode("ascii") if numbers else ""


def open_id_numbers(token: str) -> list[str] | None:
    """Return the ID numbers sealed in token ([] for none), or None when the token is not ours."""
    if not token:
        return []
    try:
        numbers = _cipher().decrypt(token.encode("ascii")).decode("ascii").split(",")
    except (InvalidToken, UnicodeError, ValueError):
        return None
    return [number for number in numbers if split_id_numbers(number)[1] == [number]][:MAX_ID_NUMBERS]


def _filters_asked() -> dict[str, str]:
    """Return the facet choices in the address, each a short printable value (the service checks the rest)."""
    chosen = {}
    for name in FACETS:
        value = request.args.get(name, "")
        # A region id too long for the database's integer would fail its lookup instead of being ignored.
        if value and value.isascii() and value.isalnum() and len(value) <= (9 if name == "region" else 16):
            chosen[name] = value
    return chosen


def _chosen_labels(results) -> dict[str, str]:
    """Return the Chinese label of each chosen facet value, for the chips above the results."""
    workflow, labels = get_workflow(), {}
    for name, value in results.filters.items():
        shown = {facet.value: facet.label for facet in results.facets.get(name, [])}
        if name == "year":
            labels[name] = f"{value}年"
        elif value in shown:
            labels[name] = shown[value]
        elif name == "region":
            region = db.session.get(Region, int(value))
            labels[name] = region.name if region else value
        elif name == "state":
            labels[name] = workflow.definition.states[value].title
        elif name == "qualification":
            labels[name] = QUALIFICATION_LEVELS[value]
        elif name == "has_credit":
            labels[name] = CREDIT_LABELS[value]
    return labels


@bp.before_request
def seal_typed_id_numbers():
    """Take a full ID number typed into the box out of the address at once, sealed, never echoed back.

    Before the sign-in check too: its redirect would carry the address into the sign-in page's next=.
    """
    words, typed_numbers = split_id_numbers(request.args.get("q", ""))
    if typed_numbers and _refusal() is None:  # a refused box is shown as typed, searched for nothing
        numbers = list(dict.fromkeys((open_id_numbers(request.args.get("idn", "")) or []) + typed_numbers))
        return redirect(url_for("search.index", **{
            **_filters_asked(), "q": " ".join(words.split()) or None,
            "idn": seal_id_numbers(numbers[:MAX_ID_NUMBERS]), "sort": request.args.get("sort") or None}))
    return None


def _refusal() -> str | None:
    """Return the Chinese message refusing the box's text when it carries a control character, else None."""
    try:
        check_text("q", "检索内容", request.args.get("q", ""))
    except ValidationError as error:
        return error.message
    return None


@bp.get("/")
@staff_role_required(*STAFF_ROLES)
def index():
    """Search the dossiers the user may view; with nothing typed, list them all, the latest handled first."""
    sealed = request.args.get("idn", "")
    id_numbers = open_id_numbers(sealed)
    refusal = _refusal()
    if refusal:
        # Shown again without the refused characters (nor a full ID number), to be corrected in place.
        words, _ = split_id_numbers(clean_filename(request.args.get("q")) or "")
        query = " ".join(words.split())[:MAX_QUERY_CHARACTERS]
        results = SearchPage(text=query, hits=[], total=0, page=1, pages=1, sort="relevance", filters={})
    else:
        query = " ".join(request.args.get("q", "").split())[:MAX_QUERY_CHARACTERS]
        results = search_dossiers(
            db.session, get_search_index(), get_workflow(), current_user, " ".join([*(id_numbers or []), query]),
            id_hash_key=get_config().ID_HASH_KEY, filters=_filters_asked(), sort=request.args.get("sort", ""),
            page=min(int_arg("page") or 1, MAX_PAGE))
    if id_numbers and not refusal:
        # Who looked up a person by full ID number, and whom it showed: PIPL's record of access.
        disclosures.id_number_searched(db.session, current_user, len(id_numbers),
                                       [hit.dossier.id for hit in results.hits])
    state = {"q": query or None, "idn": sealed if id_numbers else None, **results.filters,
             "sort": results.sort if results.sort != "relevance" else None}

    def link(**changes):
        """Return this search's address with changes (None removes a parameter); back to page 1 unless given."""
        wanted = {**state, "page": None, **changes}
        return url_for("search.index", **{name: value for name, value in wanted.items() if value not in (None, "")})

    return render_template(
        "search/index.html", results=results, query=query, link=link, workflow=get_workflow(),
        id_masks=[mask_id_number(number) for number in id_numbers or []], sealed=state["idn"],
        id_expired=id_numbers is None, sort_titles=SORT_TITLES, facet_titles=FACET_TITLES,
        chosen_labels=_chosen_labels(results), facet_names=[name for name in FACETS if name in results.facets],
        # With nothing typed there is no relevance to rank by: the index lists the latest handled first.
        sort=results.sort if query or id_numbers else "date", refusal=refusal,
        # The index trails the database by the indexer's delay: say so while changes wait for it.
        behind=queued_count(db.session),
    ), 400 if refusal else 200
