"""Demo data: staff for every role in Chaoyang's regions and dossiers in every workflow state."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..documents.basic_info_form import basic_information_form_pdf
from ..documents.certificates import certificate_jpeg
from ..local_time import BEIJING
from ..models import Dossier, User, utcnow
from ..permissions import SYSTEM, SystemActor
from ..validators import id_number_check_digit, org_code_check_char, uscc_check_char
from ..vocabulary import ADMINISTRATOR_ROLE, ARCHIVIST_ROLE, CREDIT_OFFICER_ROLE, REVIEWER_ROLE, SEXES
from .accounts import hash_password, one_time_password, set_password
from .attachments import add_attachment_version
from .dossiers import register_person
from .lifecycle import DEADLINE_LEGAL_BASIS, fire_transition, purge_dossier
from .reference import region_by_code
from .staff import create_account

DEMO = SystemActor(label="kjdms demo")

# (user name, display name, role, region code)
STAFF = (
    ("admin", "省财政厅系统管理员", ADMINISTRATOR_ROLE, "210000"),
    ("admin_shuangta", "双塔区财政局系统管理员", ADMINISTRATOR_ROLE, "211302"),
    ("reviewer_chaoyang", "朝阳市财政局审核员", REVIEWER_ROLE, "211300"),
    ("reviewer_shibenji", "市本级审核员", REVIEWER_ROLE, "211300-BJ"),
    ("reviewer_shuangta", "双塔区财政局审核员", REVIEWER_ROLE, "211302"),
    ("reviewer_longcheng", "龙城区财政局审核员", REVIEWER_ROLE, "211303"),
    ("credit_chaoyang", "朝阳市信用档案管理员", CREDIT_OFFICER_ROLE, "211300"),
    ("archivist_chaoyang", "朝阳市档案管理员", ARCHIVIST_ROLE, "211300"),
)

# (name, the first eight characters of the USCC, the organisation code's eight body characters)
EMPLOYERS = {
    "211302": ("朝阳市双塔区示范会计服务有限公司", "91211302", "MA0Y8K3L"),
    "211303": ("朝阳市龙城区示范机械制造有限公司", "91211303", "MA0Y9P2Q"),
    "211300-BJ": ("朝阳市示范事业单位", "12211300", "MB123456"),
}

# (name, birth date, sequence, employer region, path through the workflow)
APPLICANTS = (
    ("张伟", "19850312", "011", "211302", ()),
    ("王芳", "19900705", "022", "211302", ("submit",)),
    ("李娜", "19881120", "032", "211303", ("submit",)),
    ("刘洋", "19790218", "041", "211300-BJ", ("submit", "approve")),
    ("陈静", "19920930", "052", "211302", ("submit", "reject")),
    ("欧阳明", "19751101", "063", "211303", ("submit", "approve", "archive")),
    ("阿依古丽·买买提", "19950423", "072", "211302", ("submit", "approve")),
    ("赵磊", "19830606", "081", "211303", ("purge",)),
)


CITY_LEVEL = "市本级"  # city-level units: their registry is the city's
# The education certificates' issuers, by applicant.
SCHOOLS = ("辽宁大学", "东北财经大学", "沈阳师范大学", "辽宁工程技术大学")


@dataclass
class Credential:
    """One sign-in to print: who, how to sign in, what they can do."""

    role: str
    sign_in: str
    password: str | None
    note: str


def demo_id_number(region_code: str, birth: str, sequence: str) -> str:
    """Return a valid 18-digit ID number for a demo person (administrative code 6 digits)."""
    body = region_code[:6] + birth + sequence
    return body + id_number_check_digit(body)


def demo_uscc(prefix: str, org_body: str) -> str:
    """Return a valid USCC from its first eight characters and an organisation code body."""
    first17 = prefix + org_body + org_code_check_char(org_body)
    return first17 + uscc_check_char(first17)


def demo_documents(dossier: Dossier, index: int) -> list[tuple[str, bytes, str]]:
    """Return (slot, content, file name) of documents like the real ones: the printed form and certificate scans."""
    person, region = dossier.person, dossier.employer_region
    graduated = person.birth_date.year + 22
    documents = [
        ("basic_info_form", basic_information_form_pdf(dossier, generated_at=utcnow().astimezone(BEIJING)),
         "基本信息表.pdf"),
        ("employer_certificate", certificate_jpeg("营业执照（副本）", [
            ("名称", dossier.employer_name), ("统一社会信用代码", dossier.employer_uscc),
            ("类型", "事业单位" if dossier.employer_uscc.startswith("12") else "有限责任公司"),
            ("住所", "".join(part for part in region.path_name.split(" / ") if part != CITY_LEVEL)
                    + f"朝阳大街{index + 1}号")],
            issuer=f"{region.parent.name if region.name == CITY_LEVEL else region.name}市场监督管理局",
            issued_on="2015年3月12日"), "营业执照.jpg"),
        ("education_certificate", certificate_jpeg("毕业证书", [
            ("姓名", person.name), ("性别", SEXES.get(person.sex, "")), ("出生日期", f"{person.birth_date:%Y年%m月%d日}"),
            ("专业", "会计学"), ("学历", "大学本科"), ("证书编号", f"10140{graduated}0500{index:04d}")],
            issuer=SCHOOLS[index % len(SCHOOLS)], issued_on=f"{graduated}年7月1日"), "毕业证书.jpg"),
    ]
    if dossier.qualification_level != "none":
        documents.append(("qualification_certificate", certificate_jpeg("会计专业技术资格证书", [
            ("姓名", person.name), ("资格名称", "初级会计专业技术资格"),
            ("证书编号", dossier.qualification_certificate_number), ("批准日期", "2019年9月")],
            issuer="辽宁省人力资源和社会保障厅", issued_on="2019年9月30日"), "资格证书.jpg"))
    return documents


def demo_loaded(session) -> bool:
    """Tell whether the demo staff accounts exist already."""
    return session.scalar(select(User.id).where(User.username == STAFF[0][0])) is not None


def load_demo(session, workflow, blobs, id_hash_key: str, progress=lambda message: None) -> list[Credential]:
    """Create the demo staff and dossiers; return the sign-ins with their new passwords."""
    credentials, staff = [], {}
    for username, display_name, role, region_code in STAFF:
        # The back office's own service; a password given here is the demo's to print, not a one-time one.
        region = region_by_code(session, region_code)
        user, password = create_account(session, DEMO, username=username, display_name=display_name,
                                        region=region, department="会计科", role=role, password=one_time_password())
        staff.setdefault(role if role != REVIEWER_ROLE else region_code, user)
        credentials.append(Credential(role, username, password, display_name))
    staff[REVIEWER_ROLE] = staff["211300"]
    for index, (name, birth, sequence, region_code, path) in enumerate(APPLICANTS):
        progress(f"{name}: {' → '.join(('draft',) + path)}")
        employer, prefix, org_body = EMPLOYERS[region_code]
        id_number = demo_id_number(region_code, birth, sequence)
        password = one_time_password()
        dossier = register_person(
            session, name=name, id_number=id_number, password_hash=hash_password(password),
            phone=f"1390421{index:04d}", education="bachelor",
            scope_category="in_accounting_work", job_types=["cashier", "financial_reporting"],
            employer_name=employer, employer_uscc=demo_uscc(prefix, org_body), employer_region=region_code,
            household_region=region_code, qualification_level="junior" if index % 2 else "none",
            qualification_certificate_number=f"2019211{index:05d}" if index % 2 else None,
        )
        owner = dossier.person.user
        if path and path[0] == "submit":
            for slot, data, filename in demo_documents(dossier, index):
                add_attachment_version(session, workflow, blobs, dossier, slot, data, owner, filename=filename)
        for action in path:
            if action == "purge":
                purge_dossier(session, workflow, blobs, dossier, SYSTEM, "演示：逾期未进行信息更新和确认",
                              id_hash_key=id_hash_key, legal_basis=DEADLINE_LEGAL_BASIS)
                continue
            actor = {"submit": owner, "approve": staff[REVIEWER_ROLE], "reject": staff[REVIEWER_ROLE],
                     "archive": staff[ARCHIVIST_ROLE]}[action]
            comment = "学历证书照片不清晰，请重新上传" if action == "reject" else None
            fire_transition(session, workflow, dossier, action, actor, comment)
        if "purge" not in path:
            credentials.append(Credential("applicant", f"{name} / {id_number}", password,
                                          f"档案 {dossier.number}，{workflow.definition.states[dossier.state].title}"))
    progress("孙丽: a legacy person to confirm, without a password")
    legacy = register_person(
        session, name="孙丽", id_number=demo_id_number("211382", "19800815", "026"), is_legacy=True,
        to_confirm=True, household_region="211382", legacy_certificate_number="211382200300123")
    credentials.append(Credential("applicant", f"孙丽 / {legacy.person.id_number}", None,
                                  "原系统登记人员，首次登录时设置密码并确认信息"))
    return credentials


def reset_demo_passwords(session) -> list[Credential]:
    """Give every demo staff account a new password and return them."""
    credentials = []
    for username, display_name, role, _ in STAFF:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            continue
        password = one_time_password()
        set_password(session, user, password)
        credentials.append(Credential(role, username, password, display_name))
    session.commit()
    return credentials
