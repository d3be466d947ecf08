"""Template filters: dossier fields in Chinese, Beijing time, file sizes, masked IDs, text status."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

from flask import Blueprint, current_app, request, url_for
from markupsafe import Markup

from ..backends import get_config, get_workflow
from ..display import extraction_status, field_value, mask_id_number
from ..local_time import local_text
from ..extensions import db
from ..services import settings, time_rules
from ..vocabulary import flagged_titles as item_titles
from . import around_id

bp = Blueprint("filters", __name__)


@bp.app_template_filter("field")
def field(dossier, name):
    """Render a dossier field as Chinese text."""
    return field_value(dossier, name)


@bp.app_template_filter("local_time")
def local_time(moment):
    """Render a UTC time as Beijing time."""
    return local_text(moment)


@bp.app_template_filter("filesize")
def filesize(size):
    """Render a byte count as KB or MB."""
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"


@bp.app_template_filter("masked")
def masked(id_number):
    """Render an ID number with its middle hidden."""
    return mask_id_number(id_number)


@bp.app_template_filter("text_status")
def text_status(version):
    """Render whether the version's text was extracted for search, and if not, why."""
    return extraction_status(version)


@bp.app_template_filter("late_flags")
def late_flags(dossier):
    """Return the one-month rules (三) the dossier broke: 逾期登记, 逾期更新."""
    return time_rules.late_flags(dossier)


@bp.app_template_filter("flagged_titles")
def flagged_titles(codes) -> list[str]:
    """Render a rejection's flagged item codes as their Chinese names."""
    return item_titles(codes)


@bp.app_template_filter("acted_by")
def acted_by(row) -> str:
    """Name who fired a history row as people see it: the office (双塔区财政局), the person, or the system."""
    if row.actor is not None and not row.actor.is_applicant:
        # The office and the role it acted in: 双塔区财政局 · 审核人员 (the title without its gloss in brackets).
        role = get_workflow().definition.roles.get(row.actor_role, "")
        return f"{row.actor.office_label} · {role.split('（')[0]}" if role else row.actor.office_label
    return {"owner": "本人", "system": "系统"}.get(row.actor_role, "—")


@bp.app_template_global("fixed_address")
def fixed_address(endpoint: str, **arguments) -> str:
    """Return url_for(endpoint, **arguments) for the constant links of every page (navigation, style sheet).

    Built once per process and application root: the same answer every time, and url_for costs tens of
    microseconds a call, about a dozen a page.
    """
    return built_once(("address", endpoint, *sorted(arguments.items())), lambda: url_for(endpoint, **arguments))


@bp.app_template_global("id_address")
def id_address(endpoint: str, argument: str, value: int) -> str:
    """Return url_for(endpoint, **{argument: value}) for an integer argument, the rest of the address built once.

    The review page links a dozen files and its credit file: url_for costs tens of microseconds a call.
    """
    start, end = built_once(("around", endpoint, argument), lambda: around_id(endpoint, argument))
    return f"{start}{value}{end}"


@bp.app_template_global("bootstrap_tags")
def bootstrap_tags(kind: str) -> Markup:
    """Return Bootstrap's style sheet ("css") or script ("js") tags as Bootstrap-Flask writes them, built once."""
    bootstrap = current_app.extensions["bootstrap"]
    return built_once(("bootstrap", kind), bootstrap.load_css if kind == "css" else bootstrap.load_js)


def built_once(key: tuple, build):
    """Return build()'s answer for key, kept per process and application root: for what every page writes alike."""
    built = current_app.extensions.setdefault("kjdms.built_once", {})
    key = (request.script_root, *key)
    answer = built.get(key)
    if answer is None:
        answer = built[key] = build()
    return answer


@bp.app_template_global("with_query")
def with_query(address: str, **arguments) -> str:
    """Return address with the arguments that are not None as its query string, as url_for writes them.

    For a page's many links to one endpoint (filters, pages): url_for costs tens of microseconds a call.
    """
    # Keyed by the values as text, which is all urlencode reads of them (True and 1 hash alike, not so "True").
    return _with_query(address, tuple((name, str(value)) for name, value in arguments.items() if value is not None))


@lru_cache(maxsize=1024, typed=True)  # typed: a Markup address and an equal str one are kept apart
def _with_query(address: str, arguments: tuple[tuple[str, str], ...]) -> str:
    # The worklist writes about twenty of these (regions, waiting filters, pages), the same ones page after page:
    # urlencode cost 10-18 microseconds each, a tenth of that page.
    query = urlencode(arguments)
    return f"{address}?{query}" if query else address


@bp.app_template_global("pager_numbers")
def pager_numbers(page: int, pages: int) -> list[int]:
    """Return the page numbers a pager links: the first, the last, and those within two of page, in order."""
    # Picked from at most seven candidates: the worklist has hundreds of pages, and testing each number in the
    # template cost a fifth of that page's template.
    return [number for number in sorted({1, pages, *range(page - 2, page + 3)}) if 1 <= number <= pages]


@bp.app_template_global("collection_windows")
def collection_windows():
    """Return the collection window open today and the next announced one (either may be None)."""
    config = settings.effective(db.session, get_config())
    return time_rules.current_window(config), time_rules.next_window(config)


@bp.app_template_global("choice_inputs")
def choice_inputs(field, invalid: str, readonly: bool) -> Markup:
    """Return the radio buttons or checkboxes of field, as the option_inputs macro of macros.html writes them."""
    macro = current_app.jinja_env.get_template("macros.html").module.option_inputs
    choices = tuple((value, label, selected) for value, label, selected, *_ in field.iter_choices())
    return _option_inputs(macro, field.id, field.name, "radio" if field.type == "RadioField" else "checkbox",
                          invalid, bool(readonly), choices)


@bp.app_template_global("field_once")
def field_once(field) -> Markup:
    """Return what the field macro of macros.html (imported without context) writes for field.

    While the field is untouched (no data, no error) its answer depends only on how the field is defined, so it is
    kept per process: the review page's comment box and list of checkboxes cost about a quarter of its template.
    """
    macro = current_app.jinja_env.get_template("macros.html").module.field
    if field.data not in (None, "", []) or field.errors:
        return macro(field)  # what was typed, ticked or refused is written afresh
    choices = getattr(field, "choices", None)
    try:
        key = (macro, type(field), type(field.widget), type(field.data), field.id, field.name, field.label.field_id,
               str(field.label.text), str(field.description), tuple(sorted(vars(field.flags).items())),
               tuple(sorted((field.render_kw or {}).items())),
               tuple(choices.items() if isinstance(choices, dict) else choices or ()))
        hash(key)
    except TypeError:  # a render keyword or choices that cannot be a key (a list, option groups): nothing kept
        return macro(field)
    answer = _untouched_fields.get(key)
    if answer is None:
        if len(_untouched_fields) >= MAX_UNTOUCHED_FIELDS:
            _untouched_fields.clear()  # templates reloaded in development make new macros: start again
        answer = _untouched_fields[key] = macro(field)
    return answer


# The field macro's answers for untouched fields, by everything the answer depends on (field_once); bounded by the
# fields the site defines, not by what people send, and by MAX_UNTOUCHED_FIELDS.
_untouched_fields: dict[tuple, Markup] = {}
MAX_UNTOUCHED_FIELDS = 256


@lru_cache(maxsize=256)
def _option_inputs(macro, *arguments) -> Markup:
    # A page's options and ticks are few and repeat (23 rejectable items, unticked): rendering them each time cost a
    # tenth of the review page. The macro is part of the key, so a template reloaded in debug mode writes anew.
    return macro(*arguments)
