"""Registering persons and changing their basic information, on SQLite and PostgreSQL."""
import datetime
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kjdms.extensions import db
from kjdms.models import AuditEvent, Dossier, Person, User
from kjdms.permissions import PermissionDenied
from kjdms.services.demo import demo_uscc
from kjdms.services.dossiers import register_person, update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.services.transaction import ConflictError
from kjdms.validators import ValidationErrors, id_number_check_digit, org_code_check_char
from tests.helpers import USCC_SHUANGTA, applicant, complete_fields, make_id_number, upload_required

# A second, valid employer in 龙城区, whose organisation code differs from USCC_SHUANGTA's.
USCC_LONGCHENG = demo_uscc("91211303", "MA0Y9P2Q")
ORG_CODE_LONGCHENG = "MA0Y9P2Q" + org_code_check_char("MA0Y9P2Q")


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def saved_rows() -> tuple[int, int, int]:
    return count(Person), count(Dossier), count(AuditEvent)


def registration(**overrides) -> dict:
    """Return the keyword arguments of a complete registration in 双塔区."""
    values = dict(name="李娜", id_number=make_id_number(), **complete_fields())
    values.update(overrides)
    return values


def refused_registration(**overrides) -> dict[str, str]:
    """Register expecting a refusal; check nothing was saved and return the messages by field."""
    before = saved_rows()
    with pytest.raises(ValidationErrors) as caught:
        register_person(db.session, **registration(**overrides))
    db.session.expire_all()
    assert saved_rows() == before
    return caught.value.as_dict()


def audit_events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)))


class TestRegistration:
    def test_derives_sex_and_birth_date_from_the_id_number_and_starts_in_draft(self, app):
        # The 17th digit 2 is even: a woman.
        id_number = make_id_number(birth="19880215", sequence=12)
        dossier = register_person(db.session, **registration(id_number=id_number))
        dossier_id = dossier.id
        db.session.expire_all()

        dossier = db.session.get(Dossier, dossier_id)
        assert dossier.state == "draft"
        assert dossier.person.id_number == id_number
        assert dossier.person.sex == "female"
        assert dossier.person.birth_date == datetime.date(1988, 2, 15)
        assert dossier.person.name == "李娜"
        assert dossier.region.code == "211302"
        assert dossier.lock_version == 1

    def test_a_sex_and_birth_date_agreeing_with_the_id_number_are_accepted(self, app):
        id_number = make_id_number(birth="19790218", sequence=41)
        dossier = register_person(db.session, **registration(id_number=id_number, sex="男",
                                                             birth_date="1979-02-18"))
        assert (dossier.person.sex, dossier.person.birth_date) == ("male", datetime.date(1979, 2, 18))

    def test_writes_an_audit_event_without_personal_values(self, app):
        values = registration()
        dossier = register_person(db.session, **values)

        [event] = audit_events("dossier.register")
        assert (event.object_type, event.object_id) == ("dossier", dossier.id)
        assert event.detail == {"legacy": False}
        recorded = json.dumps([event.detail, event.actor_label], ensure_ascii=False)
        for personal in (values["name"], values["id_number"], values["phone"], values["employer_name"],
                         values["employer_uscc"], values["id_number"][6:14]):
            assert personal not in recorded

    def test_a_registration_with_only_name_and_id_number_is_a_draft_without_region(self, app):
        dossier = register_person(db.session, name="孙丽", id_number=make_id_number())
        assert dossier.state == "draft"
        assert dossier.region is None
        assert dossier.job_types == []

    @pytest.mark.parametrize("id_number, fragment", [
        pytest.param("21130219900101001" + "X", "校验位错误（第18位与前17位不符）", id="wrong check digit"),
        pytest.param("211302900101001", "不接受15位旧身份证号", id="15 digits"),
        pytest.param("21130219900230001" + id_number_check_digit("21130219900230001"),
                     "出生日期 19900230 不存在", id="no such birth date"),
    ])
    def test_a_bad_id_number_is_refused(self, app, id_number, fragment):
        errors = refused_registration(id_number=id_number)
        assert list(errors) == ["id_number"]
        assert errors["id_number"].startswith("身份证号：")
        assert fragment in errors["id_number"]

    def test_a_sex_contradicting_the_id_number_is_refused(self, app):
        errors = refused_registration(id_number=make_id_number(sequence=12), sex="男")
        assert list(errors) == ["sex"]
        assert "与身份证号不符（身份证号表明为女）" in errors["sex"]

    def test_a_birth_date_contradicting_the_id_number_is_refused(self, app):
        errors = refused_registration(id_number=make_id_number(birth="19900101"), birth_date="1990-01-02")
        assert list(errors) == ["birth_date"]
        assert "与身份证号不符（身份证号表明为 1990-01-01）" in errors["birth_date"]

    def test_an_id_number_registered_already_is_refused_however_it_is_typed(self, app):
        id_number = make_id_number()
        register_person(db.session, **registration(id_number=id_number))
        # Full-width digits and spaces, as a Chinese input method may produce them.
        typed = " ".join(id_number[:6]) + id_number[6:].translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
        errors = refused_registration(id_number=typed, name="王芳")
        assert list(errors) == ["id_number"]
        assert "该身份证号已登记，请直接登录" in errors["id_number"]

    def test_several_bad_fields_are_reported_together(self, app):
        errors = refused_registration(
            id_number="21130219900101001X", name="张", phone="12345", employer_uscc="91211302MA0Y8K3L70",
            employer_region="999999", household_region="211300", education="kindergarten",
        )
        assert set(errors) == {"id_number", "name", "phone", "employer_uscc", "employer_region",
                               "household_region", "education"}
        assert "校验位错误" in errors["id_number"]
        assert errors["name"].startswith("姓名：")
        assert "格式不正确" in errors["phone"]
        assert "校验位错误" in errors["employer_uscc"]
        assert "没有代码为“999999”的地区" in errors["employer_region"]
        assert "请选择到朝阳市下属的县（市、区）或市本级" in errors["household_region"]
        assert "“kindergarten”不是可选项" in errors["education"]

    @pytest.mark.parametrize("field, value, fragment", [
        pytest.param("employer_uscc", USCC_SHUANGTA[:17] + "0", "统一社会信用代码：校验位错误", id="uscc check character"),
        pytest.param("employer_uscc", "91211302MA0Y8K3L", "统一社会信用代码：应为18位", id="uscc length"),
        pytest.param("employer_org_code", "MA0Y8K3L0", "组织机构代码：校验位错误（第9位与前8位不符）", id="org code check character"),
        pytest.param("phone", "0421-123", "联系电话：格式不正确", id="phone"),
        pytest.param("employer_region", "999999", "工作单位所在地区：没有代码为“999999”的地区", id="unknown region"),
        pytest.param("employer_region", "211300", "工作单位所在地区：请选择到朝阳市下属的县（市、区）或市本级",
                     id="region with children"),
        pytest.param("household_region", "210000", "户籍所在地区：请选择到辽宁省下属的县（市、区）或市本级",
                     id="province as household region"),
    ])
    def test_a_bad_field_is_refused(self, app, field, value, fragment):
        errors = refused_registration(**{field: value})
        assert list(errors) == [field]
        assert fragment in errors[field]

    def test_an_org_code_disagreeing_with_the_uscc_is_refused(self, app):
        errors = refused_registration(employer_uscc=USCC_SHUANGTA, employer_org_code=ORG_CODE_LONGCHENG)
        assert list(errors) == ["employer_org_code"]
        assert "与统一社会信用代码第9至17位不一致" in errors["employer_org_code"]

    def test_the_org_code_is_derived_from_the_uscc_when_not_given(self, app):
        dossier = register_person(db.session, **registration())
        assert dossier.employer_org_code == USCC_SHUANGTA[8:17] == "MA0Y8K3L7"

    def test_an_org_code_agreeing_with_the_uscc_is_kept_as_printed_without_hyphen(self, app):
        dossier = register_person(db.session, **registration(employer_org_code="ma0y8k3l-7"))
        assert dossier.employer_org_code == "MA0Y8K3L7"


class TestTerritorialRule:
    def test_an_employer_in_dalian_is_refused_and_pointed_to_dalian(self, app):
        errors = refused_registration(employer_region="210200", household_region="211302")
        assert list(errors) == ["employer_region"]
        assert "大连" in errors["employer_region"]
        assert "大连市财政局" in errors["employer_region"]

    def test_a_household_in_dalian_alone_is_refused(self, app):
        errors = refused_registration(employer_region=None, household_region="210200")
        assert list(errors) == ["household_region"]
        assert "大连" in errors["household_region"]

    def test_the_employer_region_beats_a_household_in_dalian(self, app):
        dossier = register_person(db.session, **registration(employer_region="211302", household_region="210200"))
        db.session.expire_all()
        assert dossier.region.code == "211302"
        assert dossier.household_region.code == "210200"

    def test_the_household_region_decides_without_an_employer(self, app):
        dossier = register_person(db.session, **registration(employer_region=None, household_region="211382"))
        assert dossier.region.name == "凌源市"

    def test_a_student_belongs_to_the_school_region(self, app):
        dossier = register_person(db.session, **registration(
            is_student=True, school_region="211303", employer_region="211302", household_region="211302"))
        db.session.expire_all()
        assert dossier.is_student is True
        assert dossier.region.code == "211303"

    def test_a_student_without_a_school_region_has_no_region_yet(self, app):
        dossier = register_person(db.session, **registration(is_student=True, employer_region="211302"))
        assert dossier.region is None


def submitted(people, workflow, blobs):
    """Return the people fixture's dossier, uploaded and submitted by its owner."""
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
    return people["dossier"]


class TestUpdateBasicInformation:
    def test_the_owner_changes_fields_in_draft(self, app, workflow, people):
        dossier = people["dossier"]
        changed = update_basic_information(db.session, workflow, dossier,
                                           {"phone": "13800001111", "employer_name": "朝阳市新单位"},
                                           people["owner"])
        assert changed == ["phone", "employer_name"]
        db.session.expire_all()
        assert (dossier.phone, dossier.employer_name) == ("13800001111", "朝阳市新单位")
        assert dossier.lock_version == 2

    def test_the_audit_event_records_field_names_only(self, app, workflow, people):
        dossier, owner = people["dossier"], people["owner"]
        new_values = {"phone": "13800001111", "name": "张卫东", "employer_name": "朝阳市保密单位",
                      "employer_uscc": USCC_LONGCHENG, "qualification_certificate_number": "ZG20190042"}
        update_basic_information(db.session, workflow, dossier, new_values, owner)

        [event] = audit_events("dossier.update")
        assert (event.object_type, event.object_id, event.actor_id) == ("dossier", dossier.id, owner.id)
        assert event.detail == {"fields": list(new_values)}
        recorded = json.dumps([event.detail, event.actor_label], ensure_ascii=False)
        for value in new_values.values():
            assert value not in recorded

    def test_unchanged_values_change_nothing_and_write_no_audit_event(self, app, workflow, people):
        dossier = people["dossier"]
        same = {"phone": dossier.phone, "name": dossier.person.name, "employer_uscc": USCC_SHUANGTA,
                "employer_region": "211302", "job_types": ["cashier", "cashier"]}
        assert update_basic_information(db.session, workflow, dossier, same, people["owner"]) == []
        db.session.expire_all()
        assert audit_events("dossier.update") == []
        assert dossier.lock_version == 1

    def test_a_new_employer_region_moves_the_dossier(self, app, workflow, people):
        dossier = people["dossier"]
        update_basic_information(db.session, workflow, dossier, {"employer_region": "211303"}, people["owner"])
        db.session.expire_all()
        assert dossier.region.code == "211303"

    def test_a_new_uscc_brings_its_own_org_code(self, app, workflow, people):
        dossier = people["dossier"]
        update_basic_information(db.session, workflow, dossier, {"employer_uscc": USCC_LONGCHENG},
                                 people["owner"])
        db.session.expire_all()
        assert dossier.employer_uscc == USCC_LONGCHENG
        assert dossier.employer_org_code == ORG_CODE_LONGCHENG

    def test_an_org_code_disagreeing_with_the_stored_uscc_is_refused(self, app, workflow, people):
        dossier = people["dossier"]
        with pytest.raises(ValidationErrors) as caught:
            update_basic_information(db.session, workflow, dossier, {"employer_org_code": ORG_CODE_LONGCHENG},
                                     people["owner"])
        assert "与统一社会信用代码第9至17位不一致" in caught.value.as_dict()["employer_org_code"]
        db.session.expire_all()
        assert dossier.employer_org_code == "MA0Y8K3L7"

    def test_one_bad_field_leaves_every_field_unchanged(self, app, workflow, people):
        dossier = people["dossier"]
        with pytest.raises(ValidationErrors) as caught:
            update_basic_information(db.session, workflow, dossier, {
                "phone": "13800001111", "employer_name": "朝阳市新单位", "employer_uscc": "not a code",
            }, people["owner"])
        errors = caught.value.as_dict()
        assert list(errors) == ["employer_uscc"]
        assert errors["employer_uscc"].startswith("统一社会信用代码：")
        db.session.expire_all()
        assert (dossier.phone, dossier.employer_name, dossier.employer_uscc) == (
            "13904211234", "朝阳市双塔区示范会计服务有限公司", USCC_SHUANGTA)
        assert audit_events("dossier.update") == []

    def test_a_field_that_may_not_be_changed_is_refused(self, app, workflow, people):
        dossier = people["dossier"]
        id_number = dossier.person.id_number
        with pytest.raises(ValidationErrors) as caught:
            update_basic_information(db.session, workflow, dossier, {"id_number": make_id_number()},
                                     people["owner"])
        assert "“id_number”不是可修改的字段" in caught.value.as_dict()["id_number"]
        db.session.expire_all()
        assert dossier.person.id_number == id_number

    def test_moving_the_employer_to_dalian_leaves_every_field_unchanged(self, app, workflow, people):
        dossier = people["dossier"]
        with pytest.raises(ValidationErrors) as caught:
            update_basic_information(db.session, workflow, dossier,
                                     {"phone": "13800001111", "employer_region": "210200"}, people["owner"])
        assert "大连" in caught.value.as_dict()["employer_region"]
        db.session.expire_all()
        assert (dossier.phone, dossier.employer_region.code, dossier.region.code) == (
            "13904211234", "211302", "211302")
        assert audit_events("dossier.update") == []

    def test_the_owner_may_not_edit_once_submitted(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        with pytest.raises(PermissionDenied, match="您没有「修改基本信息」此档案的权限"):
            update_basic_information(db.session, workflow, dossier, {"phone": "13800001111"}, people["owner"])
        db.session.expire_all()
        assert dossier.phone == "13904211234"
        assert audit_events("dossier.update") == []

    @pytest.mark.parametrize("who", ["reviewer", "administrator", "stranger"])
    def test_only_the_owner_may_edit_a_draft(self, app, workflow, people, who):
        stranger = applicant(name="王芳")[1] if who == "stranger" else None
        actor = stranger or people[who]
        dossier = people["dossier"]
        with pytest.raises(PermissionDenied, match="您没有「修改基本信息」此档案的权限"):
            update_basic_information(db.session, workflow, dossier, {"phone": "13800001111"}, actor)
        db.session.expire_all()
        assert dossier.phone == "13904211234"
        assert audit_events("dossier.update") == []

    def test_the_owner_may_edit_again_after_a_rejection_is_revised(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], "学历证书不清晰")
        with pytest.raises(PermissionDenied):
            update_basic_information(db.session, workflow, dossier, {"phone": "13800001111"}, people["owner"])
        fire_transition(db.session, workflow, dossier, "revise", people["owner"])
        assert update_basic_information(db.session, workflow, dossier, {"phone": "13800001111"},
                                        people["owner"]) == ["phone"]

    def test_an_edit_based_on_a_read_from_before_the_submit_is_a_conflict(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        other = Session(db.engine)
        try:
            # A second browser tab read the draft before the first one submitted it.
            stale, stale_owner = other.get(Dossier, dossier.id), other.get(User, owner.id)
            assert stale.state == "draft"
            fire_transition(db.session, workflow, dossier, "submit", owner)
            with pytest.raises(ConflictError, match="您的操作未保存"):
                update_basic_information(other, workflow, stale, {"phone": "13800001111"}, stale_owner)
        finally:
            other.close()
        db.session.expire_all()
        assert (dossier.state, dossier.phone) == ("submitted", "13904211234")
        assert audit_events("dossier.update") == []
