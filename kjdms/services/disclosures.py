"""Disclosures of personal data to staff: each is written to the audit log and committed before the data leaves."""
from __future__ import annotations

from ..models import Dossier
from . import audit
from .transaction import committing


def reveal_id_number(session, actor, dossier: Dossier, reason: str | None = None) -> None:
    """Record that actor asked to see the full ID number of dossier's person (and why, when the API was told)."""
    with committing(session):
        audit.record(session, actor, "dossier.reveal_id_number", "dossier", dossier.id,
                     **({"reason": reason} if reason else {}))


def package_exported(session, actor, dossier: Dossier, *, files: int, sha256: str, size: int) -> None:
    """Record that actor took the archival package of dossier (its file count, hash and size)."""
    with committing(session):
        audit.record(session, actor, "dossier.export_package", "dossier", dossier.id, files=files, sha256=sha256,
                     size=size)


def credit_file_exported(session, actor, dossier: Dossier) -> None:
    """Record that actor took the credit file of dossier's person as a PDF."""
    with committing(session):
        audit.record(session, actor, "credit.export_pdf", "person", dossier.person_id, dossier_id=dossier.id)


def document_read(session, actor, version, how: str) -> None:
    """Record that staff actor read a document's content (how: "download" or "preview")."""
    with committing(session):
        audit.record(session, actor, f"document.{how}", "dossier", version.attachment.dossier.id,
                     version=version.id, slot=version.attachment.slot)


def id_number_searched(session, actor, numbers: int, dossier_ids: list[int]) -> None:
    """Record a search by full ID number: how many numbers and which dossiers it showed, never the numbers."""
    with committing(session):
        audit.record(session, actor, "search.id_number", "search", None, id_numbers=numbers, dossiers=dossier_ids)
