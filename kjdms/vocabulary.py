"""The closed lists of the notices (辽财会〔2019〕116号 一、二): codes stored, Chinese shown."""
from __future__ import annotations

from dataclasses import dataclass

SEXES = {"male": "男", "female": "女"}

# 一、信息采集人员范围 (一)(二)(三)
SCOPE_CATEGORIES = {
    "in_accounting_work": "在辽宁行政区域内从事会计工作的人员",
    "qualified_not_working": "虽不从事会计工作但具有会计专业技术资格的人员",
    "exam_candidate": "不具有会计专业技术资格、暂不从事会计工作，但拟报考当年度会计专业技术资格考试的人员",
}

# 一、 the nine kinds of accounting work, and the two posts that count as accounting personnel.
JOB_TYPES = {
    "cashier": "出纳",
    "checking": "稽核",
    "assets_liabilities_equity": "资产、负债和所有者权益（净资产）的核算",
    "income_expense": "收入、费用（支出）的核算",
    "financial_results": "财务成果（政府预算执行结果）的核算",
    "financial_reporting": "财务会计报告（决算报告）编制",
    "accounting_supervision": "会计监督",
    "archives_management": "会计机构内会计档案管理",
    "other": "其他会计工作",
    "head_of_accounting": "会计机构负责人（会计主管人员）",
    "chief_accountant": "总会计师",
}

QUALIFICATION_LEVELS = {
    "none": "无",
    "junior": "初级",
    "intermediate": "中级",
    "senior": "高级",
    "principal": "正高级",
}

EDUCATION_LEVELS = {
    "doctorate": "博士研究生",
    "master": "硕士研究生",
    "bachelor": "大学本科",
    "college": "大学专科",
    "secondary_vocational": "中等专科（中专、职高、技校）",
    "high_school_or_below": "高中及以下",
}

# 四（二）: what a credit record finds (虚报、谎报).
CREDIT_KINDS = {
    "falsified_information": "虚报信息",
    "false_report": "谎报信息",
    "other": "其他",
}
# A credit file is append-only: a correction or a revocation is a new record pointing at the one it changes.
CREDIT_ACTIONS = {"record": "记录", "correct": "更正", "revoke": "撤销"}


def action_title(action: str) -> str:
    """Return the Chinese name of a credit record's action."""
    return CREDIT_ACTIONS.get(action, action)

# The workflow's names that the code itself gives a meaning to: build_workflow (services/__init__.py)
# checks that the workflow file defines each, so a file that drops or renames one fails at start.
# What each role may do in each state, and which queue a reviewer works, is read from the file.
REVIEWER_ROLE = "reviewer"
CREDIT_OFFICER_ROLE = "credit_officer"
ARCHIVIST_ROLE = "archivist"
ADMINISTRATOR_ROLE = "administrator"
OWNER_ROLE = "owner"  # the applicant's local role on their own dossier
SYSTEM_ROLE = "system"  # the scheduled deadline purge
# Staff roles given on a region.
STAFF_ROLES = {
    REVIEWER_ROLE: "审核人员",
    CREDIT_OFFICER_ROLE: "信用档案管理人员",
    ARCHIVIST_ROLE: "档案管理人员",
    ADMINISTRATOR_ROLE: "系统管理员",
}
DRAFT_STATE = "draft"  # the initial state: registration and the legacy import create dossiers in it
APPROVED_STATE = "approved"  # the effective information: a working copy starts from it and replaces it
REJECTED_STATE = "rejected"  # the applicant is shown the reviewer's reason
PURGED_STATE = "purged"  # personal data removed: out of the index, the lists and the counts
WORKFLOW_STATES = (DRAFT_STATE, APPROVED_STATE, REJECTED_STATE, PURGED_STATE)
REVIEWER_QUEUE = "reviewer_queue"  # the worklist the review pages show
# Who may read a person's credit file while the dossier is in a state; those who hold it in the purged
# state may read every file that holds records, whatever the dossier's state (the file outlives a purge).
VIEW_CREDIT_FILE = "view_credit_file"
# Who may see a person's full ID number on the review page (audited each time): reviewers, by default.
REVEAL_ID_NUMBER = "reveal_id_number"


@dataclass(frozen=True)
class Slot:
    """One kind of supporting document a dossier holds (二（二）)."""

    code: str
    title: str
    description: str


ATTACHMENT_SLOTS = {
    slot.code: slot
    for slot in (
        Slot("basic_info_form", "基本信息表", "经本人签字、单位盖章的基本信息表"),
        Slot("employer_certificate", "单位代码证", "所在单位组织机构代码证或统一社会信用代码证"),
        Slot("education_certificate", "学历证书", "最高学历证书"),
        Slot("qualification_certificate", "会计专业技术资格证书", "持有资格者上传"),
        Slot("other", "其他材料", "其他需要说明的证明材料"),
    )
}

# The dossier's fields as forms, the printed form, histories and diffs name them.
DOSSIER_LABELS = {
    "name": "姓名",
    "id_number": "身份证号",
    "sex": "性别",
    "birth_date": "出生日期",
    "phone": "联系电话",
    "education": "学历",
    "scope_category": "人员类别",
    "job_types": "会计工作岗位",
    "employer_name": "工作单位名称",
    "employer_uscc": "统一社会信用代码",
    "employer_org_code": "组织机构代码",
    "employer_region": "工作单位所在地区",
    "household_region": "户籍所在地区",
    "is_student": "是否在校学生",
    "school_region": "学籍所在地区",
    "qualification_level": "会计专业技术资格",
    "qualification_certificate_number": "资格证书编号",
    "legacy_certificate_number": "原会计从业资格证书编号",
    # 三: the dates the one-month rules count from (services/time_rules.py).
    "job_started_on": "从事会计工作日期",
    "information_changed_on": "信息变更日期",
}
# The items a reviewer can point at when rejecting (WorkflowHistory.flagged): the fields a person fills in
# (sex and birth date come from the ID number) and each document, as "attachment:<slot>".
REJECTABLE_ITEMS = {**{name: label for name, label in DOSSIER_LABELS.items() if name not in ("sex", "birth_date")},
                    **{f"attachment:{code}": slot.title for code, slot in ATTACHMENT_SLOTS.items()}}


def flagged_titles(codes) -> list[str]:
    """Return the Chinese names of flagged items, an unknown code as itself."""
    return [REJECTABLE_ITEMS.get(code, code) for code in codes or ()]

# Notices (services/notices.py): kind → how the notices page names it.
NOTICE_KINDS = {
    "approved": "审核确认",
    "rejected": "退回修改",
    "credit_record": "信用档案",
    "reminder": "确认提醒",
    "digest": "待审核汇总",
    "escalation": "超期督办",
}

# The audit log (admin/audit.py): each action code written (services/audit.record) → how the log names it.
# The workflow's transitions are named from the workflow file ("档案：" + the transition's title), since the
# file may add one. tests/unit/test_audit_vocabulary.py fails when a code written in kjdms has no label.
AUDIT_ACTIONS = {
    "api_client.create": "创建API调用方",
    "api_client.rotate": "更换API调用方密钥",
    "api_client.revoke": "停用API调用方",
    "api_status_lookup": "API查询人员状态",
    "api_token_issued": "签发API令牌",
    "attachment.add_version": "上传证明材料",
    "audit.export": "导出审计日志",
    "backup.create": "备份",
    "backup.restore": "从备份恢复",
    "credit.record": "记入信用档案",
    "credit.correct": "更正信用记录",
    "credit.revoke": "撤销信用记录",
    "credit.export_pdf": "导出信用档案PDF",
    "deadline_purge.complete": "截止清理完成",
    "deadline_purge.partial": "截止清理（未完成）",
    "deadline_purge.cleanup": "截止清理收尾",
    "document.download": "下载证明材料",
    "document.preview": "预览证明材料",
    "dossier.register": "登记档案",
    "dossier.update": "修改基本信息",
    "dossier.reveal_id_number": "查看完整身份证号",
    "dossier.export_package": "导出档案材料包",
    "dossier.checkout": "开始信息变更",
    "dossier.cancel_checkout": "取消信息变更",
    "dossier.check_in": "信息变更并入档案",
    "mof_report.request": "申请生成财政部报送文件",
    "mof_report.generate": "生成财政部报送文件",
    "mof_report.download": "下载财政部报送文件",
    "region.create": "新增地区",
    "region.update": "修改地区",
    "region.delete": "删除地区",
    "role.assign": "授予角色",
    "role.revoke": "收回角色",
    "search.id_number": "按身份证号检索",
    "setting.change": "修改设置",
    "statistics.export": "导出统计表",
    "user.create": "创建账号",
    "user.update": "修改账号信息",
    "user.enable": "启用账号",
    "user.disable": "停用账号",
    "user.set_password": "设置密码",
    "user.reset_password": "重置密码",
}
WORKFLOW_ACTION_PREFIX = "workflow."
AUDIT_OBJECT_TYPES = {
    "dossier": "档案", "user": "账号", "region": "地区", "setting": "设置", "credit_record": "信用记录",
    "audit": "审计日志", "person": "人员", "api_client": "API调用方", "report_run": "报送文件任务",
    "mof_report": "财政部报送文件", "instance": "系统", "statistics": "统计", "deadline_purge": "截止清理",
    "search": "检索",
}
# The keys an event's detail holds (the keyword arguments of audit.record) → how the log names them.
AUDIT_DETAIL_KEYS = {
    "as_of": "截止日期", "blobs": "文件数", "blobs_copied": "新复制文件数", "changes": "修改内容", "cleaned": "已清理",
    "code": "地区代码", "counts": "数量", "day": "日期", "destination": "保存位置", "dossier_id": "档案编号",
    "dossiers": "显示的档案", "files": "文件数", "fields": "修改的项目", "flagged": "需修改的项目", "follows": "上次报送",
    "format": "格式", "found": "查到人数", "from_state": "原状态", "id_numbers": "身份证号个数",
    "index_pending": "检索索引待更新", "interrupted": "中途停止", "keys_sealed": "密钥已加密保存", "key": "设置项",
    "legacy": "原系统人员", "may_see_credit": "可查询信用档案", "name": "名称", "new": "新值", "old": "原值",
    "parent": "上级地区", "persons": "查询人数", "purged": "已删除个人信息", "purpose": "用途", "query": "筛选条件",
    "reason": "理由", "region": "地区", "regions": "地区", "report_id": "报送文件编号", "role": "角色", "rows": "条数",
    "sha256": "SHA-256", "size": "大小（字节）", "skipped": "跳过", "slot": "材料", "slots": "变更的材料",
    "snapshot": "备份名称", "supersedes_id": "所更正或撤销的记录", "tables": "统计表", "to_state": "新状态",
    "version": "版本", "wal_truncated": "数据库日志已截断", "working_copy": "变更副本",
}
# The fields an event's "fields" or "changes" names, by the kind of object the event is about.
AUDIT_FIELD_LABELS = {
    "dossier": DOSSIER_LABELS,
    "user": {"display_name": "姓名", "department": "科室", "phone": "联系电话"},
    "region": {"name": "名称", "office_name": "会计管理部门", "phone": "咨询电话", "address": "办公地址",
               "hours": "咨询时间", "kind": "级别", "parent": "上级地区", "collected_elsewhere": "不在本平台采集",
               "sort_order": "排序"},
    "credit_record": {"kind": "类别", "finding": "查实情况", "legal_basis": "依据", "evidence": "证据材料",
                      "found_on": "查实日期"},
}
