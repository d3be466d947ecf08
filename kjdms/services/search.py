"""Search dossiers for staff: what they typed, within the regions and states they may view, re-checked."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..models import Dossier, Region, User
from ..permissions import can
from ..search import FACETS, NO_REGION, SORTS, ScopeGrant, SearchIndex, SearchRequest
from ..search.highlight import mask_id_numbers, segments
from ..vocabulary import ATTACHMENT_SLOTS, PURGED_STATE, QUALIFICATION_LEVELS
from ..workflow import WorkflowEngine
from .identity import id_number_hash
from .indexing import documents_for, is_indexed

PAGE_SIZE = 20
MAX_QUERY_CHARACTERS = 100
# A full ID number, looked up through its keyed hash; anything shorter is ordinary text.
_FULL_ID_NUMBER = re.compile(r"(?<![0-9a-z])(\d{17}[\dx])(?![0-9a-z])", re.IGNORECASE)
CREDIT_LABELS = {"1": "有信用记录", "0": "无信用记录"}
FACET_TITLES = {"region": "地区", "state": "状态", "qualification": "会计专业技术资格",
                "year": "登记年份", "has_credit": "信用记录"}
FACET_LIMIT = 12


@dataclass(frozen=True)
class FacetValue:
    """One value of a facet with the number of matching dossiers that have it."""

    value: str
    label: str
    count: int
    selected: bool


@dataclass
class SearchHit:
    """A dossier the searcher may view, with the snippets of its fields that matched."""

    dossier: Dossier
    name: list[tuple[str, bool]]
    employer: list[tuple[str, bool]]
    attachment_snippets: list[tuple[str, list[tuple[str, bool]]]]


@dataclass
class SearchPage:
    """One page of results with the facets to narrow them."""

    text: str
    hits: list[SearchHit]
    total: int
    page: int
    pages: int
    sort: str
    filters: dict[str, str]
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)


def search_grants(workflow: WorkflowEngine, user: User | None) -> tuple[ScopeGrant, ...]:
    """Return what user's staff roles reach: for each role, its regions' subtrees and the states it may view."""
    if not isinstance(user, User) or not user.is_active or user.is_applicant:
        return ()  # applicants, the system actor and disabled accounts search nothing
    regions_by_role: dict[str, set[str]] = {}
    for assignment in user.role_assignments:
        keys = regions_by_role.setdefault(assignment.role, set())
        keys.add(str(assignment.region_id))
        if assignment.region.parent_id is None:
            keys.add(NO_REGION)  # as roles_on: dossiers with no region yet belong to the top of the tree
    grants = []
    for role, keys in sorted(regions_by_role.items()):
        states = tuple(state for state in workflow.definition.states if workflow.has_permission(state, "view", {role}))
        if states:
            grants.append(ScopeGrant(tuple(sorted(keys)), states))
    return tuple(grants)


def operator_grants(session, workflow: WorkflowEngine) -> tuple[ScopeGrant, ...]:
    """Return the whole tree in every state but purged: the scope of an operator at the server's terminal."""
    roots = session.scalars(select(Region.id).where(Region.parent_id.is_(None))).all()
    states = tuple(state for state in workflow.definition.states if state != PURGED_STATE)
    return (ScopeGrant(tuple(sorted({*map(str, roots), NO_REGION})), states),)


def split_id_numbers(text: str) -> tuple[str, list[str]]:
    """Return text without the full ID numbers in it, and those numbers (upper case X)."""
    normal = unicodedata.normalize("NFKC", text)
    numbers = [match.upper() for match in _FULL_ID_NUMBER.findall(normal)]
    return _FULL_ID_NUMBER.sub(" ", normal), numbers


def clean_filters(session, workflow: WorkflowEngine, raw: dict) -> dict[str, str]:
    """Return the recognised facet choices of raw; anything else is dropped, never an error."""
    valid = {
        "state": lambda value: value in workflow.definition.states,
        "qualification": lambda value: value in QUALIFICATION_LEVELS,
        "year": lambda value: value.isdigit() and len(value) == 4,
        "has_credit": lambda value: value in CREDIT_LABELS,
        # isascii: "²".isdigit() holds, and int() would fail on it; nine digits fit any integer column.
        "region": lambda value: (value.isascii() and value.isdigit() and len(value) <= 9
                                 and session.get(Region, int(value)) is not None),
    }
    return {name: str(raw[name]) for name in FACETS if raw.get(name) and valid[name](str(raw[name]))}


def _facet_values(session, workflow, name: str, counts: dict[str, int], chosen: str | None) -> list[FacetValue]:
    """Return a facet's values with labels, the most frequent first."""
    if name == "region":
        ids = [int(value) for value in counts if value.isdigit()]
        names = {str(region.id): region.name for region in session.scalars(select(Region).where(Region.id.in_(ids)))}
        labels = {**names, NO_REGION: "未确定地区"}
    elif name == "state":
        labels = {state: definition.title for state, definition in workflow.definition.states.items()}
    elif name == "qualification":
        labels = QUALIFICATION_LEVELS
    elif name == "has_credit":
        labels = CREDIT_LABELS
    else:
        labels = {}
    if name == "year":
        order = sorted(counts.items(), reverse=True)  # the latest year first
    else:
        order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [FacetValue(value, labels.get(value, value), count, value == chosen)
            for value, count in order[:FACET_LIMIT] if count]


def _hit(dossier: Dossier, typed: str) -> SearchHit:
    """Return dossier as a hit, with its matching snippets."""
    name = dossier.person.name or ""
    snippets = []
    for attachment in dossier.attachments:
        version = attachment.current
        if version is not None and version.extracted_text:
            for snippet in segments(version.extracted_text, typed):
                snippets.append((ATTACHMENT_SLOTS[attachment.slot].title, mask_id_numbers(snippet)))
    whole = lambda text: (segments(text, typed, whole=True) or [[(text, False)]])[0]  # noqa: E731
    return SearchHit(dossier, whole(name), whole(dossier.employer_name or ""), snippets[:2])


def search_dossiers(session, index: SearchIndex, workflow: WorkflowEngine, user: User | None, text: str, *,
                    id_hash_key: str, filters: dict | None = None, sort: str = "relevance",
                    page: int = 1, page_size: int = PAGE_SIZE, grants: tuple[ScopeGrant, ...] | None = None,
                    _repaired: bool = False) -> SearchPage:
    """Return a page of the dossiers user may view that match text, with facet counts in the same scope.

    With no user, grants give the scope (an operator's: operator_grants).
    """
    text = " ".join((text or "").split())[:MAX_QUERY_CHARACTERS]
    sort = sort if sort in SORTS else "relevance"
    chosen = clean_filters(session, workflow, filters or {})
    words, id_numbers = split_id_numbers(text)
    index_filters = {("region_path" if name == "region" else name): value for name, value in chosen.items()}
    request = SearchRequest(
        text=words, grants=search_grants(workflow, user) if user is not None else grants or (),
        id_hashes=tuple(id_number_hash(id_hash_key, number) for number in id_numbers),
        filters=index_filters, sort=sort, page=max(1, page), page_size=page_size,
    )
    results = index.search(request)
    pages = max(1, -(-results.total // page_size))
    if request.page > pages:
        request = SearchRequest(**{**request.__dict__, "page": pages})
        results = index.search(request)
    found = {dossier.id: dossier for dossier in session.scalars(
        select(Dossier).where(Dossier.id.in_(results.dossier_ids)).options(
            selectinload(Dossier.person), selectinload(Dossier.region), selectinload(Dossier.attachments)))}
    # The index is derived: every hit is checked against the database before anyone sees it.
    visible = [found[dossier_id] for dossier_id in results.dossier_ids
               if dossier_id in found and is_indexed(found[dossier_id])
               and (user is None or can(workflow, user, "view", found[dossier_id]))]
    stale = [dossier_id for dossier_id in results.dossier_ids if dossier_id not in {d.id for d in visible}]
    if stale:
        # Repair the entries the database contradicts, then count once more without them.
        index.write(*documents_for(session, stale, id_hash_key))
        if not _repaired:
            return search_dossiers(session, index, workflow, user, text, id_hash_key=id_hash_key, filters=filters,
                                   sort=sort, page=page, page_size=page_size, grants=grants, _repaired=True)
    return SearchPage(
        text=text, hits=[_hit(dossier, words) for dossier in visible], total=results.total,
        page=request.page, pages=pages, sort=sort, filters=chosen,
        facets={name: _facet_values(session, workflow, name, results.facets.get(name, {}), chosen.get(name))
                for name in FACETS},
    )
