"""The scope rules of the back office as a truth table: {province, city, county administrator} × {account inside,
below, beside, above the scope} × {list, view, create, grant, grant administrator, revoke, disable, reset}."""
from __future__ import annotations

import pytest

from kjdms.extensions import db
from kjdms.models import User
from kjdms.permissions import PermissionDenied
from kjdms.services import staff
from kjdms.services.reference import region_by_code
from tests.helpers import staff as make_staff

ADMINS = {"province": "210000", "city": "211300", "county": "211302"}
# Where each position lies, for each administrator (None: that administrator has no such region).
POSITIONS = {
    "province": {"inside": "210000", "below": "211302", "beside": None, "above": None},
    "city": {"inside": "211300", "below": "211302", "beside": "210100", "above": "210000"},
    "county": {"inside": "211302", "below": None, "beside": "211303", "above": "211300"},
}
OK, ABSENT, REFUSED = "ok", "absent", "refused"
# What each operation does on an account (or at a region) in each position.
EXPECTED = {
    "inside": {"list": OK, "view": OK, "create": OK, "grant": OK, "grant_administrator": REFUSED,
               "revoke": OK, "disable": OK, "reset": OK},
    "below": {"list": OK, "view": OK, "create": OK, "grant": OK, "grant_administrator": OK,
              "revoke": OK, "disable": OK, "reset": OK},
    "beside": dict.fromkeys(("list", "view", "create", "grant", "grant_administrator", "revoke", "disable", "reset"),
                            ABSENT),
}
EXPECTED["above"] = EXPECTED["beside"]
CASES = [(level, position, operation)
         for level, positions in POSITIONS.items()
         for position, code in positions.items() if code is not None
         for operation in EXPECTED[position]]


def region(code):
    return region_by_code(db.session, code)


@pytest.fixture
def world(app):
    """An administrator at each level, and a reviewer homed at every region the table names."""
    admins = {level: make_staff(f"admin_{level}", "administrator", code) for level, code in ADMINS.items()}
    targets = {code: make_staff(f"reviewer_{code.replace('-', '_')}", "reviewer", code)
               for code in {"210000", "211300", "211302", "211303", "210100"}}
    return admins, targets


def attempt(operation, actor, target: User, code: str):
    """Do operation as actor on target (homed at code), or at region code."""
    session = db.session
    if operation == "list":
        return target in staff.list_accounts(session, actor)
    if operation == "view":
        return staff.find_account(session, staff.scope_of(session, actor), target.id)
    if operation == "create":
        return staff.create_account(session, actor, username=f"new_{target.id}", display_name="新审核员",
                                    region=region(code), role="reviewer")
    if operation == "grant":
        return staff.grant_role(session, actor, target, "credit_officer", region(code))
    if operation == "grant_administrator":
        return staff.grant_role(session, actor, target, "administrator", region(code))
    if operation == "revoke":
        return staff.revoke_role(session, actor, target, "reviewer", region(code))
    if operation == "disable":
        return staff.set_active(session, actor, target, False)
    return staff.reset_password(session, actor, target)


def outcome(operation, actor, target, code) -> str:
    try:
        result = attempt(operation, actor, target, code)
    except staff.OutOfScope:
        return ABSENT
    except PermissionDenied:
        return REFUSED
    return ABSENT if result is False else OK


@pytest.mark.parametrize("level, position, operation", CASES, ids=["-".join(case) for case in CASES])
def test_scope_truth_table(world, level, position, operation):
    admins, targets = world
    code = POSITIONS[level][position]
    before = (targets[code].is_active, targets[code].password_hash, len(targets[code].role_assignments))
    result = outcome(operation, admins[level], targets[code], code)
    assert result == EXPECTED[position][operation]
    if result != OK:
        db.session.expire_all()
        assert (targets[code].is_active, targets[code].password_hash, len(targets[code].role_assignments)) == before


class TestEscalation:
    def test_no_one_edits_their_own_roles_or_account(self, world):
        admins, _ = world
        city = admins["city"]
        for operation in ("grant", "revoke", "disable", "reset"):
            with pytest.raises(PermissionDenied):
                attempt(operation, city, city, "211300")

    def test_a_county_administrator_cannot_make_a_city_administrator(self, world):
        admins, targets = world
        with pytest.raises(staff.OutOfScope):
            staff.grant_role(db.session, admins["county"], targets["211302"], "administrator", region("211300"))

    def test_a_forged_region_id_is_as_good_as_none(self, world):
        admins, _ = world
        scope = staff.scope_of(db.session, admins["county"])
        for forged in (region("211303").id, region("210000").id, 999_999, "1", None):
            with pytest.raises(staff.OutOfScope):
                staff.find_region(db.session, scope, forged)

    def test_an_account_holding_a_role_given_from_above_is_left_to_those_above(self, world):
        admins, targets = world
        shuangta = targets["211302"]
        staff.grant_role(db.session, admins["province"], shuangta, "reviewer", region("211300"))
        with pytest.raises(PermissionDenied):
            staff.set_active(db.session, admins["county"], shuangta, False)
        assert shuangta.is_active

    def test_a_peer_administrator_is_managed_from_above_only(self, world):
        admins, _ = world
        peer = make_staff("admin_county_2", "administrator", "211302")
        with pytest.raises(PermissionDenied):
            staff.reset_password(db.session, admins["county"], peer)
        staff.reset_password(db.session, admins["city"], peer)

    def test_a_non_administrator_sees_nothing(self, world):
        _, targets = world
        reviewer = targets["211300"]
        assert staff.list_accounts(db.session, reviewer) == []
        with pytest.raises(staff.OutOfScope):
            staff.find_account(db.session, staff.scope_of(db.session, reviewer), targets["211302"].id)


class TestAccounts:
    def test_a_new_account_must_change_its_one_time_password(self, world):
        admins, _ = world
        user, password = staff.create_account(db.session, admins["county"], username="zhang_shuangta",
                                              display_name="张审核", region=region("211302"), role="reviewer")
        assert user.must_change_password and len(password) >= 8
        assert [(a.role, a.region.code) for a in user.role_assignments] == [("reviewer", "211302")]
        assert user.office_label == "双塔区财政局"

    def test_user_names_are_unique_and_well_formed(self, world):
        admins, _ = world
        from kjdms.validators import ValidationError
        for bad in ("admin_county", "x", "张三", "1abc"):
            with pytest.raises(ValidationError):
                staff.create_account(db.session, admins["county"], username=bad, display_name="某",
                                     region=region("211302"))

    def test_disable_and_reset_end_every_session(self, world):
        admins, targets = world
        target = targets["211302"]
        generation = target.session_generation
        staff.set_active(db.session, admins["county"], target, False)
        db.session.refresh(target)
        assert target.session_generation > generation and not target.is_active
        staff.set_active(db.session, admins["county"], target, True)
        staff.reset_password(db.session, admins["county"], target)
        db.session.refresh(target)
        assert target.session_generation > generation + 1 and target.must_change_password
