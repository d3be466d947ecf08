"""What every search index offers: write documents, search within a scope, report stamps, rebuild."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

# The facets a search page offers, in the order it shows them.
FACETS = ("region", "state", "qualification", "year", "has_credit")
# Where no region is set yet (roles_on: only roles at the top of the tree reach those dossiers).
NO_REGION = "_none"
SORTS = ("relevance", "date")
# What a document's typed text is searched in; the ID number is never among them (only its keyed hash is indexed).
TEXT_FIELDS = ("name", "employer", "numbers", "region_text", "attachments")
# Facets and filters: a document field of the same name, one value per dossier.
VALUE_FIELDS = ("region", "state", "qualification", "education", "scope", "year", "has_credit", "kind")


@dataclass(frozen=True)
class ScopeGrant:
    """Dossiers in any of states whose region lies under any of region_keys: one role's reach."""

    region_keys: tuple[str, ...]
    states: tuple[str, ...]


@dataclass(frozen=True)
class SearchRequest:
    """One search: typed text, the searcher's scope, chosen facet values, order and page."""

    text: str = ""
    grants: tuple[ScopeGrant, ...] = ()
    # Keyed hashes of the full ID numbers found in text: looked up exactly, never as a prefix.
    id_hashes: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)
    sort: str = "relevance"
    page: int = 1
    page_size: int = 20


@dataclass
class IndexResults:
    """The dossier ids on one page, the total in scope, and the facet counts over all matches."""

    dossier_ids: list[int]
    total: int
    facets: dict[str, dict[str, int]]


class SearchIndex(Protocol):
    """A derived, rebuildable index of dossiers (the database is the truth)."""

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = ()) -> None:
        """Add or replace documents (keyed by dossier_id) and remove deleted_ids, in one commit."""

    def search(self, request: SearchRequest) -> IndexResults:
        """Return the page of matches within request.grants; nothing outside them is counted."""

    def stamps(self) -> dict[int, str]:
        """Return every indexed dossier id with the stamp of the document it was indexed from."""

    def start_rebuild(self, outbox_mark: int = 0) -> Rebuild:
        """Return the rebuild in progress (to resume it) or a new one that will replay outbox rows after outbox_mark."""

    def merge_small_segments(self, *, busy: bool = False) -> bool:
        """Tidy up after writes, off the request (the indexer, after each batch; busy: more wait); return whether it did."""

    def purge_deleted(self) -> None:
        """Rewrite the index so that removed documents' bytes are gone from its files."""

    def remove_stale_generations(self) -> list[str]:
        """Delete what earlier generations of the index left on disk; return their names."""


class Rebuild(Protocol):
    """A new index built beside the live one, resumable, swapped in at the end."""

    resume_after: int  # the highest dossier id already in the new index (0 for a new rebuild)
    outbox_mark: int  # the last outbox row before the rebuild began: later ones are replayed into it

    def add(self, documents: list[dict], last_id: int) -> None:
        """Add documents and record that every dossier up to last_id is done (a checkpoint)."""

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = ()) -> None:
        """Replace or remove documents that changed while the rebuild ran."""

    def swap(self) -> None:
        """Make the new index the live one, atomically, and drop the old one."""
