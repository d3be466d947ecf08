"""Roles on a dossier: its owner, staff roles inherited down the region tree, the system actor."""
import pytest

from kjdms.extensions import db
from kjdms.models import RoleAssignment
from kjdms.permissions import SYSTEM, PermissionDenied, can, require, roles_on
from kjdms.services.accounts import assign_role
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.services.reference import region_by_code
from tests.helpers import applicant, staff, upload_required


class TestOwner:
    def test_the_owner_holds_owner_on_their_dossier(self, app, people):
        assert roles_on(people["owner"], people["dossier"]) == {"owner"}

    def test_another_applicant_holds_nothing_on_it(self, app, people):
        other_dossier, other_owner = applicant(name="王芳")
        assert roles_on(other_owner, people["dossier"]) == frozenset()
        assert roles_on(people["owner"], other_dossier) == frozenset()
        assert roles_on(other_owner, other_dossier) == {"owner"}

    def test_an_inactive_owner_holds_nothing(self, app, people):
        people["owner"].is_active = False
        db.session.commit()
        assert roles_on(people["owner"], people["dossier"]) == frozenset()

    def test_a_staff_role_given_to_an_applicant_account_reaches_no_dossier(self, app, workflow, blobs, people):
        # Staff roles belong to staff accounts (services/staff.py reads them so): an applicant's own transitions
        # never ask for role assignments, and a stray one grants nothing, not even on the owner's own dossier.
        # assign_role refuses one (test_applicant_roles.py): the row is written directly, as older data might hold it.
        owner, dossier = people["owner"], people["dossier"]
        other_dossier, _ = applicant(name="王芳")
        db.session.add(RoleAssignment(user=owner, role="reviewer", region=region_by_code(db.session, "210000")))
        db.session.commit()
        assert roles_on(owner, dossier) == {"owner"}
        assert roles_on(owner, other_dossier) == frozenset()
        upload_required(workflow, blobs, other_dossier, other_dossier.person.user)
        fire_transition(db.session, workflow, other_dossier, "submit", other_dossier.person.user)
        assert not can(workflow, owner, "review", other_dossier)


class TestStaffRolesInheritDownTheRegionTree:
    @pytest.mark.parametrize("who, expected", [
        pytest.param("reviewer", {"reviewer"}, id="reviewer of 双塔区 itself"),
        pytest.param("city_reviewer", {"reviewer"}, id="reviewer of 朝阳市 above it"),
        pytest.param("credit_officer", {"credit_officer"}, id="credit officer of 朝阳市"),
        pytest.param("archivist", {"archivist"}, id="archivist of 朝阳市"),
        pytest.param("administrator", {"administrator"}, id="administrator of 辽宁省"),
        pytest.param("other_reviewer", set(), id="reviewer of 龙城区 beside it"),
    ])
    def test_roles_on_a_shuangta_dossier(self, app, people, who, expected):
        assert people["dossier"].region.code == "211302"
        assert roles_on(people[who], people["dossier"]) == expected

    @pytest.mark.parametrize("username, region_code", [
        ("reviewer_shibenji", "211300-BJ"), ("reviewer_lingyuan", "211382"), ("reviewer_shenyang", "210100"),
        ("reviewer_dalian", "210200"),
    ])
    def test_a_reviewer_of_a_sibling_or_unrelated_region_holds_nothing(self, app, people, username, region_code):
        assert roles_on(staff(username, "reviewer", region_code), people["dossier"]) == frozenset()

    def test_a_longcheng_dossier_is_reached_by_the_longcheng_reviewer_only(self, app, people):
        dossier, _ = applicant(name="李娜", region_code="211303")
        assert roles_on(people["other_reviewer"], dossier) == {"reviewer"}
        assert roles_on(people["reviewer"], dossier) == frozenset()
        assert roles_on(people["city_reviewer"], dossier) == {"reviewer"}
        assert roles_on(people["administrator"], dossier) == {"administrator"}

    def test_roles_from_several_assignments_count_where_they_reach(self, app, people):
        user = people["other_reviewer"]
        assign_role(db.session, user, "credit_officer", region_by_code(db.session, "211300"))
        db.session.commit()
        longcheng_dossier, _ = applicant(name="李娜", region_code="211303")
        assert roles_on(user, people["dossier"]) == {"credit_officer"}
        assert roles_on(user, longcheng_dossier) == {"reviewer", "credit_officer"}

    @pytest.mark.parametrize("who", ["reviewer", "city_reviewer", "administrator"])
    def test_an_inactive_staff_user_holds_nothing(self, app, people, who):
        people[who].is_active = False
        db.session.commit()
        assert roles_on(people[who], people["dossier"]) == frozenset()

    def test_the_roles_follow_the_dossier_when_its_region_changes(self, app, workflow, people):
        dossier = people["dossier"]
        update_basic_information(db.session, workflow, dossier, {"employer_region": "211303"}, people["owner"])
        assert roles_on(people["reviewer"], dossier) == frozenset()
        assert roles_on(people["other_reviewer"], dossier) == {"reviewer"}
        assert roles_on(people["owner"], dossier) == {"owner"}

    def test_a_dossier_without_region_is_reached_only_from_the_top_of_the_tree(self, app, people):
        dossier, owner = applicant(name="孙丽", complete=False)
        assert dossier.region is None
        assert roles_on(people["administrator"], dossier) == {"administrator"}
        assert roles_on(people["city_reviewer"], dossier) == frozenset()
        assert roles_on(people["reviewer"], dossier) == frozenset()
        assert roles_on(owner, dossier) == {"owner"}


class TestSystemActor:
    def test_the_system_holds_only_system(self, app, people):
        assert roles_on(SYSTEM, people["dossier"]) == {"system"}
        dossier_without_region, _ = applicant(name="孙丽", complete=False)
        assert roles_on(SYSTEM, dossier_without_region) == {"system"}

    def test_the_system_holds_no_permission_in_the_state_maps(self, app, workflow, people):
        permissions = workflow.definition.permission_titles
        assert not any(can(workflow, SYSTEM, permission, people["dossier"]) for permission in permissions)

    def test_nobody_signed_in_holds_nothing(self, app, people):
        assert roles_on(None, people["dossier"]) == frozenset()


class TestPermissionsByState:
    def test_in_draft_the_owner_edits_and_the_reviewer_only_views(self, app, workflow, people):
        dossier = people["dossier"]
        assert can(workflow, people["owner"], "edit", dossier)
        assert can(workflow, people["owner"], "add_attachment", dossier)
        assert can(workflow, people["reviewer"], "view", dossier)
        assert not can(workflow, people["reviewer"], "edit", dossier)
        assert not can(workflow, people["credit_officer"], "view", dossier)
        assert not can(workflow, people["other_reviewer"], "view", dossier)

    def test_once_submitted_only_reviewers_of_the_region_review(self, app, workflow, blobs, people):
        dossier = people["dossier"]
        upload_required(workflow, blobs, dossier, people["owner"])
        fire_transition(db.session, workflow, dossier, "submit", people["owner"])
        assert can(workflow, people["reviewer"], "review", dossier)
        assert can(workflow, people["city_reviewer"], "review", dossier)
        assert not can(workflow, people["other_reviewer"], "review", dossier)
        assert can(workflow, people["credit_officer"], "annotate", dossier)
        assert not can(workflow, people["owner"], "edit", dossier)

    def test_require_returns_the_roles_or_refuses_naming_the_permission(self, app, workflow, people):
        dossier = people["dossier"]
        assert require(workflow, people["city_reviewer"], "view", dossier) == {"reviewer"}
        with pytest.raises(PermissionDenied, match="您没有「审核」此档案的权限"):
            require(workflow, people["city_reviewer"], "review", dossier)
        with pytest.raises(PermissionDenied, match="您没有「查看」此档案的权限"):
            require(workflow, people["other_reviewer"], "view", dossier)
