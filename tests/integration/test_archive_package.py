"""The archival package: what the ZIP holds, and `kjdms verify-package` naming every file that does not match."""
import hashlib
import io
import json
import struct
import zipfile
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent, CreditRecord
from kjdms.samples import sample_pdf
from kjdms.backends import get_config
from kjdms.signing import signature_document
from kjdms.services.archive import (MANIFEST, MANIFEST_CHECKSUM, SIGNATURE, SUMMARY, PackageError,
                                    export_package, verify_package)
from kjdms.signing import read_or_create_signing_key
from kjdms.services.attachments import add_attachment_version
from kjdms.services.identity import id_number_hash
from kjdms.services.lifecycle import fire_transition
from kjdms.services.reference import region_by_code
from tests.helpers import upload_required


@pytest.fixture
def archived(people, workflow, blobs):
    """张伟's dossier approved and archived, with two versions of one document and one credit record."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("first"), owner,
                           filename="说明一.pdf")
    add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("second"), owner,
                           filename="说明二.pdf")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"], "信息属实")
    evidence = dossier.attachment("education_certificate").current
    db.session.add(CreditRecord(
        person_id=dossier.person_id, kind="falsified_information", finding="学历证书系伪造",
        legal_basis="辽财会〔2019〕116号 四（二）", found_on=date(2020, 5, 6),
        evidence=[{"version_id": evidence.id, "slot": "education_certificate", "number": evidence.number,
                   "sha256": evidence.sha256, "media_type": evidence.media_type, "filename": "学历.pdf"}],
        office_region_id=region_by_code(db.session, "211300").id, recorded_by_id=people["credit_officer"].id,
        recorded_by_label="credit_chaoyang", subject_name="张伟",
        subject_id_hash=id_number_hash("test-id-hash-key", dossier.person.id_number)))
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "archive", people["archivist"], "不再从事会计工作")
    return dossier


def run(app, *args):
    return app.test_cli_runner().invoke(args=[str(arg) for arg in args], catch_exceptions=False)


def rewrite(path, *, change=None, drop=None, add=None, replace_manifest=None):
    """Rewrite the ZIP at path: change one member's bytes with change(name, data), drop or add members."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            if name == drop:
                continue
            if change is not None:
                data = change(name, data)
            if name == MANIFEST and replace_manifest is not None:
                data = replace_manifest(json.loads(data))
            archive.writestr(name, data)
        for name, data in (add or {}).items():
            archive.writestr(name, data)


def flip_first_byte(target):
    return lambda name, data: bytes([data[0] ^ 0x01]) + data[1:] if name == target else data


class TestContent:
    def test_the_zip_holds_every_version_named_by_slot_number_and_hash(self, app, archived, workflow, blobs):
        data = export_package(db.session, blobs, workflow, archived)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            manifest = json.loads(archive.read(MANIFEST))
            versions = [v for a in archived.attachments for v in a.versions]
            assert len(versions) == 5
            for version in versions:
                extension = {"application/pdf": "pdf", "image/png": "png"}[version.media_type]
                path = f"files/{version.attachment.slot}/v{version.number}-{version.sha256[:12]}.{extension}"
                assert path in names and archive.read(path) == blobs.read(version.sha256)
                assert archive.getinfo(path).compress_type == zipfile.ZIP_DEFLATED
            assert names == {entry["path"] for entry in manifest["files"]} | {MANIFEST, MANIFEST_CHECKSUM, SUMMARY}
            checksum = archive.read(MANIFEST_CHECKSUM).decode()
            assert checksum == f"{hashlib.sha256(archive.read(MANIFEST)).hexdigest()}  {MANIFEST}\n"
            assert manifest["summary"]["sha256"] == hashlib.sha256(archive.read(SUMMARY)).hexdigest()

    def test_the_manifest_carries_identity_masked_files_history_credit_and_revisions(self, app, archived, workflow,
                                                                                      blobs):
        data = export_package(db.session, blobs, workflow, archived)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read(MANIFEST))
            id_number = archived.person.id_number
            assert manifest["format"] == "kjdms-archive-package" and manifest["format_version"] == 1
            assert manifest["dossier"]["number"] == archived.number and manifest["dossier"]["state"] == "archived"
            assert manifest["person"] == {"name": "张伟", "id_number_masked": id_number[:4] + "*" * 10 + id_number[-4:]}
            # The full ID number leaves the system in no member of the package.
            assert all(id_number.encode() not in archive.read(name) for name in archive.namelist())
            other = [entry for entry in manifest["files"] if entry["slot"] == "other"]
            assert [(e["number"], e["original_filename"], e["media_type"]) for e in other] == [
                (1, "说明一.pdf", "application/pdf"), (2, "说明二.pdf", "application/pdf")]
            assert all(entry["size"] == len(archive.read(entry["path"])) and entry["uploaded_at"] for entry in other)
            assert [(row["action"], row["comment"]) for row in manifest["history"]] == [
                ("submit", None), ("approve", "信息属实"), ("archive", "不再从事会计工作")]
            [credit] = manifest["credit_records"]
            education = archived.attachment("education_certificate").current
            assert credit["finding"] == "学历证书系伪造" and credit["kind_title"] == "虚报信息"
            assert credit["evidence"][0]["sha256"] == education.sha256 and credit["office"].endswith("朝阳市")
            states = [revision["state"] for revision in manifest["revisions"]]
            assert states[0] == "draft" and states[-3:] == ["submitted", "approved", "archived"]
            assert manifest["revisions"][-1]["attachments"]["other"]["number"] == 2

    def test_the_summary_is_a_pdf_in_chinese_with_the_number_and_the_hashes(self, app, archived, workflow, blobs):
        data = export_package(db.session, blobs, workflow, archived)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(archive.read(SUMMARY))).pages)
        compact = "".join(text.split())
        assert archived.number in compact and "会计人员档案归档摘要" in compact and "学历证书系伪造" in compact
        assert archived.attachment("other").current.sha256 in compact and "不再从事会计工作" in compact

    def test_a_missing_blob_refuses_the_package_and_leaves_no_file(self, app, archived, workflow, blobs, tmp_path):
        blobs.delete(archived.attachment("other").current.sha256)
        out = tmp_path / "package.zip"
        with pytest.raises(PackageError, match="文件缺失"):
            export_package(db.session, blobs, workflow, archived, out)
        assert list(tmp_path.glob("*package.zip*")) == []

    def test_writing_never_overwrites_an_existing_file(self, app, archived, workflow, blobs, tmp_path):
        out = tmp_path / "package.zip"
        out.write_bytes(b"keep me")
        with pytest.raises(FileExistsError):
            export_package(db.session, blobs, workflow, archived, out)
        assert out.read_bytes() == b"keep me"


class TestVerify:
    @pytest.fixture
    def package(self, app, archived, workflow, blobs, tmp_path):
        out = tmp_path / f"{archived.number}.zip"
        export_package(db.session, blobs, workflow, archived, out)
        return out

    def test_export_verify_flip_one_byte_verify_names_the_file(self, app, archived, package):
        ok = run(app, "verify-package", package)
        assert ok.exit_code == 0 and "验证通过" in ok.output
        target = f"files/other/v1-{archived.attachment('other').versions[0].sha256[:12]}.pdf"
        rewrite(package, change=flip_first_byte(target))
        failed = run(app, "verify-package", package)
        assert failed.exit_code == 1 and "验证通过" not in failed.output
        assert f"不一致：{target}" in failed.output and failed.output.count("不一致：") == 1

    def test_a_missing_file_is_named(self, app, archived, package):
        target = f"files/other/v2-{archived.attachment('other').versions[1].sha256[:12]}.pdf"
        rewrite(package, drop=target)
        result = verify_package(package)
        assert (result.missing, result.extra, result.different) == ([target], [], [])
        assert f"缺少：{target}" in run(app, "verify-package", package).output

    def test_an_extra_file_is_named(self, app, package):
        rewrite(package, add={"files/other/v9-extra.pdf": b"%PDF-1.4 not ours"})
        result = verify_package(package)
        assert (result.missing, result.extra, result.different) == ([], ["files/other/v9-extra.pdf"], [])
        output = run(app, "verify-package", package)
        assert output.exit_code == 1 and "多余：files/other/v9-extra.pdf" in output.output

    def test_a_tampered_manifest_fails_its_checksum(self, app, package):
        def tamper(manifest):
            manifest["person"]["name"] = "李四"
            return json.dumps(manifest, ensure_ascii=False)
        rewrite(package, replace_manifest=tamper)
        result = verify_package(package)
        assert result.different == [MANIFEST] and not result.ok
        assert f"不一致：{MANIFEST}" in run(app, "verify-package", package).output

    def test_a_file_swapped_together_with_its_hash_in_the_manifest_fails_the_manifest_checksum(
            self, app, archived, package):
        target = f"files/other/v1-{archived.attachment('other').versions[0].sha256[:12]}.pdf"
        forged = b"%PDF-1.4 forged"

        def tamper(manifest):
            for entry in manifest["files"]:
                if entry["path"] == target:
                    entry["sha256"], entry["size"] = hashlib.sha256(forged).hexdigest(), len(forged)
            return json.dumps(manifest, ensure_ascii=False)
        rewrite(package, change=lambda name, data: forged if name == target else data, replace_manifest=tamper)
        assert verify_package(package).different == [MANIFEST]

    def test_a_damaged_zip_entry_is_named_different(self, app, archived, package):
        target = f"files/other/v2-{archived.attachment('other').versions[1].sha256[:12]}.pdf"
        raw = bytearray(package.read_bytes())
        with zipfile.ZipFile(package) as archive:
            info = archive.getinfo(target)
        # Inside the stored (deflated) data of the entry, past its local header: its CRC no longer matches.
        name_length, extra_length = struct.unpack_from("<HH", raw, info.header_offset + 26)
        offset = info.header_offset + 30 + name_length + extra_length + 2
        raw[offset] ^= 0xFF
        package.write_bytes(bytes(raw))
        result = verify_package(package)
        assert target in result.different and not result.ok

    def test_a_missing_manifest_and_a_file_that_is_no_zip(self, app, package, tmp_path):
        rewrite(package, drop=MANIFEST)
        result = verify_package(package)
        assert MANIFEST in result.missing and not result.ok
        junk = tmp_path / "junk.zip"
        junk.write_bytes(b"not a zip at all")
        output = run(app, "verify-package", junk)
        assert output.exit_code == 1 and "不是可读的 ZIP 文件" in output.output


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, contents: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def forge_consistently(path, target: str, forged: bytes) -> None:
    """Swap target's content and fix its manifest entry and the manifest checksum, as a careful forger would."""
    contents = members(path)
    manifest = json.loads(contents[MANIFEST])
    for entry in manifest["files"]:
        if entry["path"] == target:
            entry["sha256"], entry["size"] = hashlib.sha256(forged).hexdigest(), len(forged)
    body = json.dumps(manifest, ensure_ascii=False).encode("utf-8")
    contents.update({target: forged, MANIFEST: body,
                     MANIFEST_CHECKSUM: f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n".encode()})
    write_members(path, contents)


class TestSignature:
    @pytest.fixture
    def signed(self, app, archived, tmp_path):
        out, key = tmp_path / "signed.zip", tmp_path / "instance.pem"
        assert run(app, "export-dossier", archived.id, "--out", out).exit_code == 0
        shown = run(app, "package-key", "--out", key)
        assert shown.exit_code == 0 and "BEGIN PUBLIC KEY" in shown.output and "指纹：" in shown.output
        return out, key

    def test_an_exported_package_is_signed_and_checks_against_the_published_key(self, app, archived, signed):
        package, key = signed
        assert SIGNATURE in members(package)
        result = verify_package(package, [key.read_text()])
        assert result.ok and (result.signature, result.trusted) == ("valid", True)
        output = run(app, "verify-package", package, "--public-key", key)
        assert output.exit_code == 0 and "签名有效，出自所给公钥" in output.output
        assert "来源未核对" in run(app, "verify-package", package).output  # no key given: integrity only

    def test_the_key_is_made_once_owner_only_and_signs_every_package(self, app, archived, signed, tmp_path):
        path = get_config().PACKAGE_SIGNING_KEY_FILE
        assert path.stat().st_mode & 0o777 == 0o600
        assert run(app, "export-dossier", archived.id, "--out", tmp_path / "again.zip").exit_code == 0
        first, again = (verify_package(package) for package in (signed[0], tmp_path / "again.zip"))
        assert first.signer == again.signer is not None

    def test_a_file_forged_with_its_manifest_entry_and_checksum_breaks_the_signature(self, app, archived, signed):
        package, key = signed
        target = f"files/other/v1-{archived.attachment('other').versions[0].sha256[:12]}.pdf"
        forge_consistently(package, target, b"%PDF-1.4 forged")
        result = verify_package(package)
        assert result.signature == "invalid" and result.different == [SIGNATURE] and not result.ok
        output = run(app, "verify-package", package, "--public-key", key)
        assert output.exit_code == 1 and "签名无效" in output.output

    def test_a_package_re_signed_with_another_key_is_refused_against_the_published_one(
            self, app, archived, signed, tmp_path):
        package, key = signed
        target = f"files/other/v1-{archived.attachment('other').versions[0].sha256[:12]}.pdf"
        forge_consistently(package, target, b"%PDF-1.4 forged")
        contents = members(package)
        contents[SIGNATURE] = signature_document(read_or_create_signing_key(tmp_path / "forger.pem"),
                                              contents[MANIFEST]).encode()
        write_members(package, contents)
        assert verify_package(package).ok  # self-consistent: only the published key tells it apart
        result = verify_package(package, [key.read_text()])
        assert result.trusted is False and not result.ok
        output = run(app, "verify-package", package, "--public-key", key)
        assert output.exit_code == 1 and "不是所给的公钥" in output.output

    def test_an_unsigned_package_fails_when_a_key_is_required(self, app, signed):
        package, key = signed
        contents = members(package)
        contents.pop(SIGNATURE)
        write_members(package, contents)
        assert verify_package(package).ok and verify_package(package).signature == "missing"
        output = run(app, "verify-package", package, "--public-key", key)
        assert output.exit_code == 1 and "没有签名" in output.output

    @pytest.mark.parametrize("signature_file", [
        b"not json", b"[]", b'"a string"', b'{"public_key": 5, "signature": "AAAA"}',
        b'{"public_key": "not a key", "signature": "AAAA"}', b'{"signature": "AAAA"}',
    ])
    def test_a_damaged_signature_file_fails_the_check_without_a_crash(self, app, signed, signature_file):
        package, key = signed
        contents = members(package)
        contents[SIGNATURE] = signature_file
        write_members(package, contents)
        result = verify_package(package)
        assert result.signature == "invalid" and SIGNATURE in result.different and not result.ok
        output = run(app, "verify-package", package, "--public-key", key)
        assert output.exit_code == 1 and "签名无效" in output.output

    def test_a_public_key_file_that_is_no_key_is_refused(self, app, signed, tmp_path):
        package, _ = signed
        (tmp_path / "junk.pem").write_text("not a key")
        output = run(app, "verify-package", package, "--public-key", tmp_path / "junk.pem")
        assert output.exit_code == 1 and "--public-key：不是可读的 PEM 公钥" in output.output


class TestExportCommand:
    def test_writes_the_dossier_number_zip_here_by_default_and_audits_it(self, app, archived, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        result = run(app, "export-dossier", archived.id)
        assert result.exit_code == 0, result.output
        out = tmp_path / f"{archived.number}.zip"
        assert verify_package(out).ok and f"已导出 {archived.number}" in result.output
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "dossier.export_package")).one()
        assert event.object_id == archived.id and event.actor_label == "cli"
        assert event.detail["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    def test_takes_the_number_and_out_and_refuses_to_overwrite(self, app, archived, tmp_path):
        out = tmp_path / "导出.zip"
        assert run(app, "export-dossier", archived.number, "--out", out).exit_code == 0
        first = out.read_bytes()
        again = run(app, "export-dossier", archived.number, "--out", out)
        assert again.exit_code == 1 and "已存在，不会覆盖" in again.output and out.read_bytes() == first

    def test_an_unknown_dossier_is_refused(self, app, tmp_path):
        for wrong in ("999999", "KJ0000999999", "abc", "KJ" + "9" * 30):
            result = run(app, "export-dossier", wrong, "--out", tmp_path / "x.zip")
            assert result.exit_code == 1 and "没有编号为" in result.output
        assert not (tmp_path / "x.zip").exists()
