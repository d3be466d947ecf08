"""The archive: an archivist's dossiers, and the archival package (ZIP of files, manifest, summary) with its check."""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .. import signing
from ..blobs import BlobStore
from ..blobs.base import CHUNK_SIZE, BlobNotFound
from ..display import mask_id_number
from ..models import CreditRecord, Dossier, DossierRevision, User, WorkflowHistory, as_utc, utcnow
from ..vocabulary import ARCHIVIST_ROLE, ATTACHMENT_SLOTS, CREDIT_ACTIONS, CREDIT_KINDS, flagged_titles
from ..workflow import WorkflowEngine
from ..local_time import BEIJING as LOCAL_ZONE
from .revisions import shown_fields, snapshot_fields
from .worklist import clamp_page, covered_region_ids

PAGE_SIZE = 50

PACKAGE_FORMAT = "kjdms-archive-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# In `sha256sum` format, so `sha256sum -c manifest.json.sha256` checks the manifest without kjdms.
MANIFEST_CHECKSUM = "manifest.json.sha256"
# The instance's Ed25519 signature of manifest.json, with the public key and its fingerprint (kjdms.signing).
SIGNATURE = "manifest.json.sig"
CONTROL_FILES = {MANIFEST, MANIFEST_CHECKSUM, SIGNATURE}
SUMMARY = "summary.pdf"
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


# -- the archivist's dossiers --------------------------------------------------------------------

def archive_states(workflow: WorkflowEngine) -> list[str]:
    """Return the states in which the workflow lets archivists view a dossier (approved, archived)."""
    return [state for state in workflow.definition.states
            if workflow.has_permission(state, "view", frozenset({ARCHIVIST_ROLE}))]


@dataclass
class ArchivePage:
    """One page of an archivist's dossiers, with the count per state for the filter."""

    dossiers: list[Dossier]
    total: int
    page: int
    pages: int
    counts_by_state: dict[str, int]


def archivist_dossiers(session, workflow: WorkflowEngine, user: User, *, state: str | None = None,
                       page: int = 1) -> ArchivePage:
    """Return a page of the dossiers in user's archive regions that archivists may view, the latest changed first."""
    states = archive_states(workflow)
    scope = [Dossier.region_id.in_(covered_region_ids(session, user, ARCHIVIST_ROLE)),
             Dossier.baseline_id.is_(None), Dossier.state.in_(states)]
    counts = dict(session.execute(select(Dossier.state, func.count()).where(*scope).group_by(Dossier.state)).all())
    if state is not None:
        scope.append(Dossier.state == (state if state in states else ""))
    total = counts.get(state, 0) if state is not None else sum(counts.values())
    page, pages = clamp_page(page, total, PAGE_SIZE)
    dossiers = session.scalars(
        select(Dossier).where(*scope).order_by(Dossier.state_changed_at.desc(), Dossier.id.desc())
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        .options(selectinload(Dossier.person), selectinload(Dossier.region))).all()
    return ArchivePage(dossiers, total, page, pages, {state: counts.get(state, 0) for state in states})


# -- the package -----------------------------------------------------------------------------------

class PackageError(Exception):
    """The package cannot be made: a stored file is missing or no longer matches its hash."""


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def package_path(version) -> str:
    """Return where version's file lies in the package: files/<slot>/v<number>-<sha256[:12]>.<ext>."""
    extension = EXTENSIONS.get(version.media_type, "bin")
    return f"files/{version.attachment.slot}/v{version.number}-{version.sha256[:12]}.{extension}"


def _versions(dossier: Dossier):
    return [version for attachment in sorted(dossier.attachments, key=lambda a: a.slot)
            for version in attachment.versions]


def _history(session, dossier: Dossier, workflow: WorkflowEngine) -> list[dict]:
    rows = session.scalars(select(WorkflowHistory).where(WorkflowHistory.dossier_id == dossier.id)
                           .order_by(WorkflowHistory.created_at, WorkflowHistory.id)).all()
    titles = workflow.definition.transitions
    return [{"at": _iso(row.created_at), "action": row.action,
             "title": titles[row.action].title if row.action in titles else "信息变更并入",
             "from_state": row.from_state, "to_state": row.to_state,
             "to_state_title": workflow.definition.states[row.to_state].title, "actor_role": row.actor_role,
             "actor_role_title": workflow.definition.roles.get(row.actor_role, row.actor_role),
             "actor": row.actor.label if row.actor is not None else None, "comment": row.comment,
             "flagged": list(row.flagged or []), "flagged_titles": flagged_titles(row.flagged)} for row in rows]


def _credit_records(session, dossier: Dossier) -> list[dict]:
    rows = session.scalars(select(CreditRecord).where(CreditRecord.person_id == dossier.person_id)
                           .order_by(CreditRecord.recorded_at, CreditRecord.id)).all()
    return [{"id": row.id, "action": row.action, "action_title": CREDIT_ACTIONS.get(row.action, row.action),
             "supersedes_id": row.supersedes_id, "kind": row.kind, "kind_title": CREDIT_KINDS.get(row.kind, row.kind),
             "finding": row.finding, "legal_basis": row.legal_basis, "evidence": list(row.evidence or []),
             "found_on": row.found_on.isoformat(), "office": row.office_region.path_name,
             "recorded_by": row.recorded_by_label, "recorded_at": _iso(row.recorded_at)} for row in rows]


def _revisions(session, dossier: Dossier) -> list[dict]:
    rows = session.scalars(select(DossierRevision).where(DossierRevision.dossier_id == dossier.id)
                           .order_by(DossierRevision.recorded_at, DossierRevision.id)).all()
    return [{"recorded_at": _iso(row.recorded_at), "state": row.state, "fields": row.fields,
             "attachments": row.attachments} for row in rows]


def package_manifest(session, workflow: WorkflowEngine, dossier: Dossier, generated_at: datetime,
                     generated_by: str) -> dict:
    """Return the manifest of dossier's package, all but the summary's own entry."""
    person = dossier.person
    return {
        "format": PACKAGE_FORMAT, "format_version": FORMAT_VERSION,
        "generated_at": _iso(generated_at), "generated_by": generated_by,
        "dossier": {
            "number": dossier.number, "state": dossier.state,
            "state_title": workflow.definition.states[dossier.state].title,
            "created_at": _iso(dossier.created_at), "region": dossier.region.path_name if dossier.region else None,
            "fields": snapshot_fields(dossier),
        },
        # The ID number masked: the package leaves the system, the full number stays in it.
        "person": {"name": person.name, "id_number_masked": mask_id_number(person.id_number)},
        "files": [{"path": package_path(version), "slot": version.attachment.slot,
                   "slot_title": ATTACHMENT_SLOTS[version.attachment.slot].title
                   if version.attachment.slot in ATTACHMENT_SLOTS else version.attachment.slot,
                   "number": version.number, "size": version.size, "sha256": version.sha256,
                   "media_type": version.media_type, "original_filename": version.original_filename,
                   "uploaded_at": _iso(version.uploaded_at), "comment": version.comment}
                  for version in _versions(dossier)],
        "history": _history(session, dossier, workflow),
        "credit_records": _credit_records(session, dossier),
        "revisions": _revisions(session, dossier),
    }


def _zip_info(name: str, moment: datetime) -> zipfile.ZipInfo:
    local = as_utc(moment).astimezone(LOCAL_ZONE)
    info = zipfile.ZipInfo(name, date_time=(max(local.year, 1980),) + local.timetuple()[1:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _copy_blob(archive: zipfile.ZipFile, blobs: BlobStore, version, name: str) -> None:
    """Stream version's blob into the archive, refusing content that no longer matches its hash."""
    digest = hashlib.sha256()
    try:
        source = blobs.open(version.sha256)
    except BlobNotFound as error:
        raise PackageError(f"文件缺失：{name}（sha256 {version.sha256}）") from error
    with source, archive.open(_zip_info(name, version.uploaded_at), "w", force_zip64=True) as target:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            target.write(chunk)
    if digest.hexdigest() != version.sha256:
        raise PackageError(f"文件内容与记录的 sha256 不符：{name}")


def write_package(session, blobs: BlobStore, workflow: WorkflowEngine, dossier: Dossier, target: BinaryIO, *,
                  generated_by: str, generated_at: datetime | None = None, signing_key=None) -> dict:
    """Write dossier's archival package as a ZIP into target, signed with signing_key if given; return its manifest."""
    from ..documents.package_summary import summary_pdf

    generated_at = generated_at or utcnow()
    manifest = package_manifest(session, workflow, dossier, generated_at, generated_by)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for version, entry in zip(_versions(dossier), manifest["files"]):
            _copy_blob(archive, blobs, version, entry["path"])
        summary = summary_pdf(manifest, shown_fields(session, manifest["dossier"]["fields"]))
        manifest["summary"] = {"path": SUMMARY, "size": len(summary), "sha256": hashlib.sha256(summary).hexdigest(),
                               "media_type": "application/pdf"}
        archive.writestr(_zip_info(SUMMARY, generated_at), summary)
        body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8")
        archive.writestr(_zip_info(MANIFEST, generated_at), body)
        archive.writestr(_zip_info(MANIFEST_CHECKSUM, generated_at),
                         f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n")
        if signing_key is not None:
            archive.writestr(_zip_info(SIGNATURE, generated_at), signing.signature_document(signing_key, body))
    return manifest


def export_package(session, blobs: BlobStore, workflow: WorkflowEngine, dossier: Dossier,
                   out: Path | str | None = None, *, generated_by: str = "system", signing_key=None) -> bytes | dict:
    """Return dossier's archival package as bytes, or write it to the new file out and return its manifest.

    Written beside out first and linked into place, so a failure leaves no half package and an
    existing file is never overwritten (FileExistsError).
    """
    if out is None:
        buffer = io.BytesIO()
        write_package(session, blobs, workflow, dossier, buffer, generated_by=generated_by, signing_key=signing_key)
        return buffer.getvalue()
    out = Path(out)
    if out.exists():
        raise FileExistsError(out)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as target:
            manifest = write_package(session, blobs, workflow, dossier, target, generated_by=generated_by,
                                     signing_key=signing_key)
        os.link(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


# -- checking a package ----------------------------------------------------------------------------

@dataclass
class Verification:
    """What a package check found: every name that is missing, extra or different, and anything unreadable."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    # "valid", "invalid" or "missing"; signer is the fingerprint of the key that signed, trusted whether
    # it is one of the keys the check was given (None: none was given, so only integrity was checked).
    signature: str = "missing"
    signer: str | None = None
    trusted: bool | None = None

    @property
    def ok(self) -> bool:
        """Tell whether everything matched."""
        return not (self.missing or self.extra or self.different or self.problems)


def _hash_member(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with archive.open(name) as member:
        while chunk := member.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _expected_entries(manifest) -> dict[str, dict] | None:
    """Return path → entry for every file the manifest lists (the summary included), or None if malformed."""
    try:
        # A folder package (a report to the Ministry, a backup snapshot) has data files and no summary.
        entries = list(manifest["files"]) + ([] if manifest.get("format") in FOLDER_FORMATS else [manifest["summary"]])
        listed = {entry["path"]: entry for entry in entries}
        for entry in entries:
            if not (isinstance(entry["path"], str) and isinstance(entry["sha256"], str)
                    and isinstance(entry["size"], int)):
                return None
    except (KeyError, TypeError):
        return None
    return listed if len(listed) == len(entries) else None


@contextmanager
def owner_only(path: Path) -> Iterator[BinaryIO]:
    """Open path for writing, readable by its owner only from the first byte, and sync it to disk on closing."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as target:
        yield target
        target.flush()
        os.fsync(target.fileno())


def file_entry(folder: Path, path: Path) -> dict:
    """Return the manifest entry of path: its name within folder, its size and its sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
    return {"path": str(path.relative_to(folder)), "size": path.stat().st_size, "sha256": digest.hexdigest()}


class DigestingWriter:
    """A file being written that counts its size and sha256 as it goes: its manifest entry without a second read."""

    def __init__(self, target: BinaryIO, name: str):
        self.target, self.name, self.size, self.digest = target, name, 0, hashlib.sha256()

    def write(self, data: bytes) -> None:
        """Write data and count it."""
        self.target.write(data)
        self.size += len(data)
        self.digest.update(data)

    def entry(self) -> dict:
        """Return the manifest entry of what was written, as file_entry gives it."""
        return {"path": self.name, "size": self.size, "sha256": self.digest.hexdigest()}


def write_folder_manifest(folder: Path, manifest: dict, signing_key) -> bytes:
    """Write manifest.json, its checksum and its signature into folder, owner-only and synced; return the body."""
    body = (json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8")
    for name, contents in ((MANIFEST, body),
                           (MANIFEST_CHECKSUM, f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n".encode("ascii")),
                           (SIGNATURE, signing.signature_document(signing_key, body).encode("ascii"))):
        with owner_only(folder / name) as target:
            target.write(contents)
    return body


# Packages written as a folder rather than a ZIP: format → version.
FOLDER_FORMATS = {"kjdms-mof-report": 1, "kjdms-backup": 1}


class _Folder:
    """A folder read the way verify_package reads a ZIP: names, open, read."""

    def __init__(self, root: Path):
        self.root = root

    def namelist(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def open(self, name: str):
        return open(self.root / name, "rb")

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def verify_package(source: Path | str | BinaryIO, trusted_keys: list[str] | None = None) -> Verification:
    """Recompute every hash in the package at source against its manifest and name whatever does not match.

    With trusted_keys (PEM public keys), the package must also carry a valid signature by one of them.
    """
    result = Verification()
    try:
        archive = _Folder(Path(source)) if isinstance(source, (str, Path)) and Path(source).is_dir() \
            else zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        result.problems.append(f"不是可读的 ZIP 文件：{error}")
        return result
    with archive:
        names = Counter(name for name in archive.namelist() if not name.endswith("/"))
        # A name stored twice: the second copy is extra whatever the first holds.
        result.extra.extend(name for name, count in names.items() if count > 1)
        manifest = _read_manifest(archive, names, result, trusted_keys)
        if manifest is None:
            result.extra.extend(sorted(set(names) - CONTROL_FILES))
            return result
        expected = _expected_entries(manifest)
        if expected is None:
            result.problems.append(f"{MANIFEST} 的文件清单格式不正确")
            return result
        for path, entry in expected.items():
            if path not in names:
                result.missing.append(path)
                continue
            try:
                sha256, size = _hash_member(archive, path)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:  # a damaged entry fails its CRC
                result.different.append(path)
                result.problems.append(f"{path}：无法读取（{error}）")
                continue
            result.checked += 1
            if sha256 != entry["sha256"] or size != entry["size"]:
                result.different.append(path)
        result.extra.extend(sorted(set(names) - set(expected) - CONTROL_FILES))
    return result


def _read_manifest(archive: zipfile.ZipFile, names: Counter, result: Verification,
                   trusted_keys: list[str] | None) -> dict | None:
    """Return the manifest if present, readable and matching its checksum file; else record why and return None."""
    for name in (MANIFEST, MANIFEST_CHECKSUM):
        if name not in names:
            result.missing.append(name)
    if MANIFEST not in names:
        return None
    try:
        body = archive.read(MANIFEST)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        result.different.append(MANIFEST)
        result.problems.append(f"{MANIFEST}：无法读取（{error}）")
        return None
    if MANIFEST_CHECKSUM in names:
        try:
            recorded = archive.read(MANIFEST_CHECKSUM).decode("ascii").split()[0]
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError, IndexError):
            recorded = ""
        if recorded != hashlib.sha256(body).hexdigest():
            result.different.append(MANIFEST)
    _check_signature(archive, names, body, result, trusted_keys)
    try:
        manifest = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        result.problems.append(f"{MANIFEST} 不是有效的 JSON")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") not in {PACKAGE_FORMAT, *FOLDER_FORMATS}:
        result.problems.append(f"{MANIFEST} 不是 kjdms 档案包的清单")
        return None
    if manifest.get("format_version") != FOLDER_FORMATS.get(manifest["format"], FORMAT_VERSION):
        result.problems.append(f"档案包格式版本 {manifest.get('format_version')!r} 不受支持（支持 {FORMAT_VERSION}）")
        return None
    return manifest


def _check_signature(archive: zipfile.ZipFile, names: Counter, body: bytes, result: Verification,
                     trusted_keys: list[str] | None) -> None:
    """Check the manifest's signature, and whether its key is among trusted_keys; record what was found."""
    if SIGNATURE in names:
        try:
            signed = json.loads(archive.read(SIGNATURE))
            public, signature = signed["public_key"], signed["signature"]
            result.signer = signing.fingerprint(public)
            result.signature = "valid" if signing.signature_is_valid(public, body, signature) else "invalid"
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, TypeError):
            result.signature = "invalid"
        if result.signature == "invalid":
            result.different.append(SIGNATURE)
            result.problems.append(f"{SIGNATURE}：签名无效，清单在签名后被改动或签名文件已损坏")
    if trusted_keys is None:
        return
    result.trusted = result.signature == "valid" and result.signer in {signing.fingerprint(key) for key in trusted_keys}
    if result.signature == "missing":
        result.problems.append("档案包没有签名，无法确认出自本机构")
    elif result.signature == "valid" and not result.trusted:
        result.problems.append(f"签名有效，但签名密钥（指纹 {result.signer}）不是所给的公钥")
