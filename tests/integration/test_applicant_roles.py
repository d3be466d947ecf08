"""An applicant's account holds no staff role: refused in the service, the back office and the kjdms command."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent, RoleAssignment
from kjdms.permissions import SystemActor
from kjdms.services import staff
from kjdms.services.accounts import APPLICANT_ROLE_REFUSED, assign_role
from kjdms.services.reference import region_by_code
from kjdms.validators import ValidationError
from kjdms.vocabulary import STAFF_ROLES
from tests.helpers import applicant
from tests.helpers import staff as make_staff


def assignments_of(user) -> list[RoleAssignment]:
    db.session.expire_all()
    return db.session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user.id)).all()


def role_events_of(user) -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "role.assign",
                                                       AuditEvent.object_id == user.id)).all()


@pytest.mark.parametrize("role", sorted(STAFF_ROLES))
def test_the_service_refuses_every_staff_role_naming_the_field(app, role):
    _, owner = applicant(region_code="211302")
    with pytest.raises(ValidationError) as refused:
        assign_role(db.session, owner, role, region_by_code(db.session, "211302"))
    assert (refused.value.field, refused.value.message) == ("role", APPLICANT_ROLE_REFUSED)
    assert refused.value.message.startswith("角色：")
    db.session.rollback()
    assert assignments_of(owner) == [] and role_events_of(owner) == []


def test_the_province_operator_granting_through_staff_is_refused_and_nothing_is_saved(app):
    # The operator's scope covers everything, so only the service's own check stands in the way.
    _, owner = applicant(region_code="211302")
    with pytest.raises(ValidationError, match="会计人员本人的账号不能持有工作人员角色"):
        staff.grant_role(db.session, SystemActor(label="cli"), owner, "reviewer", region_by_code(db.session, "210000"))
    assert assignments_of(owner) == [] and role_events_of(owner) == []


def test_a_staff_account_is_still_given_its_role(app):
    user = make_staff("shenhe_wang", "reviewer", "211302")
    assert [(a.role, a.region.code) for a in assignments_of(user)] == [("reviewer", "211302")]


def test_the_back_office_grant_form_treats_an_applicant_as_absent(app, browser):
    _, owner = applicant(region_code="211302")
    province = browser().enter_as(make_staff("admin_province", "administrator", "210000"))
    response = province.submit(f"/admin/accounts/grant/?id={owner.id}",
                               {"role": "reviewer", "region": str(region_by_code(db.session, "211302").id)},
                               page="/admin/accounts/")
    assert response.status_code == 404
    assert assignments_of(owner) == []


def test_the_command_finds_no_staff_account_for_an_applicant(app):
    dossier, owner = applicant(region_code="211302")
    # An applicant signs in with the ID number and has no user name: the command looks up staff by name only.
    result = app.test_cli_runner().invoke(args=["user", "grant", dossier.person.id_number, "reviewer",
                                                "--region", "211302"])
    assert result.exit_code == 1
    assert f"没有用户名为“{dossier.person.id_number}”的工作人员账号" in result.output
    assert assignments_of(owner) == []
