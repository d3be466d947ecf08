"""Audit details as a clerk reads them: every kind of value the services write, in Chinese, ID numbers masked."""
from __future__ import annotations

from pathlib import Path

import pytest

from kjdms.admin.audit_text import AuditText, masked
from kjdms.models import AuditEvent
from kjdms.workflow.definition import load_definition

DEFINITION = load_definition(Path(__file__).resolve().parents[2] / "workflows" / "dossier.yaml")
NAMES = AuditText(DEFINITION, {"211302": "双塔区", "211300": "朝阳市", "210000": "辽宁省"})
ID_NUMBER = "21130219900101123X"


def detail(action: str, object_type: str, **values) -> str:
    return NAMES.detail_text(AuditEvent(action=action, object_type=object_type, object_id=12, detail=values))


@pytest.mark.parametrize("action, object_type, values, shown", [
    ("workflow.reject", "dossier", {"from_state": "submitted", "to_state": "rejected",
                                    "flagged": ["phone", "attachment:education_certificate"]},
     "原状态：待审核；新状态：已退回；需修改的项目：联系电话、学历证书"),
    ("dossier.update", "dossier", {"fields": ["employer_name", "job_types"]}, "修改的项目：工作单位名称、会计工作岗位"),
    ("user.update", "user", {"fields": ["display_name", "phone"]}, "修改的项目：姓名、联系电话"),
    ("region.update", "region", {"code": "211302", "changes": {"phone": {"old": "0421-1", "new": "0421-2"},
                                                               "parent": {"old": "210000", "new": "211300"}}},
     "地区代码：双塔区（211302）；修改内容：咨询电话 0421-1 → 0421-2；上级地区 辽宁省（210000） → 朝阳市（211300）"),
    ("credit.correct", "credit_record", {"dossier_id": 7, "supersedes_id": 3, "fields": ["finding", "found_on"]},
     "档案编号：KJ0000000007；所更正或撤销的记录：3；修改的项目：查实情况、查实日期"),
    ("setting.change", "setting", {"key": "collection_windows", "old": None, "new": "2019-04-15:2019-06-30"},
     "设置项：信息采集期；原值：—；新值：2019-04-15:2019-06-30"),
    ("search.id_number", "search", {"id_numbers": 2, "dossiers": [7, 9]}, "身份证号个数：2；显示的档案：KJ0000000007、KJ0000000009"),
    ("api_client.create", "api_client", {"regions": ["211300", "999999"], "may_see_credit": False},
     "地区：朝阳市（211300）、999999；可查询信用档案：否"),
    ("dossier.check_in", "dossier", {"working_copy": 15, "slots": ["basic_info_form"]},
     "变更副本：KJ0000000015；变更的材料：基本信息表"),
    ("role.assign", "user", {"role": "credit_officer", "region": "211302"}, "角色：信用档案管理人员；地区：双塔区（211302）"),
    ("audit.export", "audit", {"rows": 3, "query": "flt0_0=%E5%BC%A0"}, "条数：3；筛选条件：flt0_0=张"),
    ("backup.create", "instance", {"counts": {"users": 3}, "keys_sealed": True}, "数量：users 3；密钥已加密保存：是"),
])
def test_each_detail_reads_as_chinese_pairs(action, object_type, values, shown):
    assert detail(action, object_type, **values) == shown


def test_id_numbers_are_masked_wherever_free_text_holds_one_and_hashes_are_not():
    sha256 = "1" * 18 + "a" * 46
    shown = detail("dossier.reveal_id_number", "dossier", reason=f"来电核对{ID_NUMBER}，旧证{ID_NUMBER[:6] + ID_NUMBER[8:17]}")
    assert shown == "理由：来电核对2113**********123X，旧证2113*******1123"
    assert ID_NUMBER not in detail("audit.export", "audit", query=f"flt0_0={ID_NUMBER}")
    assert masked(sha256) == sha256 and masked("KJ0000000012") == "KJ0000000012"


def test_the_list_page_shows_a_pair_a_line_escaped():
    event = AuditEvent(action="setting.change", object_type="setting", detail={"key": "x", "new": "<b>"})
    assert str(NAMES.detail_html(event)) == "设置项：x<br>新值：&lt;b&gt;"


def test_actions_objects_and_unknown_codes():
    assert NAMES.action("workflow.submit") == "档案：提交审核" and NAMES.action("role.revoke") == "收回角色"
    assert NAMES.action("legacy.code") == "legacy.code"
    assert NAMES.object_type("credit_record") == "信用记录"
    assert NAMES.object_id(AuditEvent(object_type="dossier", object_id=12)) == "KJ0000000012"
    assert NAMES.object_id(AuditEvent(object_type="user", object_id=12)) == "12"
    assert NAMES.object_id(AuditEvent(object_type="instance", object_id=None)) == ""


@pytest.mark.parametrize("label, shown", [
    ("zhang_admin", "zhang_admin"), ("applicant:12", "会计人员本人（账号12）"), ("api:社保系统", "API 调用方：社保系统"),
    ("cli", "命令行操作员"), ("system", "系统（定时任务）"), ("anonymous", "未登录的访问者"), ("kjdms demo", "演示数据"),
])
def test_actors_are_named_as_a_clerk_reads_them_and_typed_back_to_their_label(label, shown):
    assert NAMES.actor(label) == shown
    assert NAMES.stored_actor(shown) == label


def test_a_typed_name_that_only_looks_like_a_shown_one_stays_as_typed():
    assert AuditText.stored_actor("会计人员本人（账号）") == "会计人员本人（账号）"
    assert AuditText.stored_actor("API 调用方：") == "API 调用方："
