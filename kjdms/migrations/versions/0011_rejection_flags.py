"""Rejection flags: the items a reviewer marked as at fault, kept as codes on the history row.

Revision ID: 0011
Revises: 0010
"""
import re

from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# The labels the review page wrote as a 【】 prefix before this migration, frozen here as they were then.
PREFIX_LABELS = {
    '姓名': 'name', '身份证号': 'id_number', '联系电话': 'phone', '学历': 'education', '人员类别': 'scope_category',
    '会计工作岗位': 'job_types', '工作单位名称': 'employer_name', '统一社会信用代码': 'employer_uscc',
    '组织机构代码': 'employer_org_code', '工作单位所在地区': 'employer_region', '户籍所在地区': 'household_region',
    '是否在校学生': 'is_student', '学籍所在地区': 'school_region', '会计专业技术资格': 'qualification_level',
    '资格证书编号': 'qualification_certificate_number', '原会计从业资格证书编号': 'legacy_certificate_number',
    '从事会计工作日期': 'job_started_on', '信息变更日期': 'information_changed_on',
    '基本信息表': 'attachment:basic_info_form', '单位代码证': 'attachment:employer_certificate',
    '学历证书': 'attachment:education_certificate', '会计专业技术资格证书': 'attachment:qualification_certificate',
    '其他材料': 'attachment:other',
}
PREFIX = re.compile(r"^((?:【[^】]+】)+)")


def split_prefix(comment):
    """Return (codes, comment as typed) for a comment that starts with the old 【label】 markers; else ([], comment)."""
    match = PREFIX.match(comment or "")
    if not match:
        return [], comment
    labels = re.findall(r"【([^】]+)】", match.group(1))
    if not all(label in PREFIX_LABELS for label in labels):
        return [], comment  # typed by the reviewer, not written by the page: leave it as it is
    rest = comment[match.end():]
    return [PREFIX_LABELS[label] for label in labels], rest


def upgrade():
    with op.batch_alter_table('workflow_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flagged', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    # Earlier rejections carry their items in the comment's prefix: move them to the column.
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT id, comment FROM workflow_history WHERE action = 'reject' AND comment LIKE '【%'")).all()
    for row_id, comment in rows:
        codes, rest = split_prefix(comment)
        if codes and rest.strip():
            connection.execute(sa.text("UPDATE workflow_history SET flagged = :flagged, comment = :comment "
                                       "WHERE id = :id").bindparams(sa.bindparam("flagged", type_=sa.JSON)),
                               {"flagged": codes, "comment": rest, "id": row_id})


def downgrade():
    with op.batch_alter_table('workflow_history', schema=None) as batch_op:
        batch_op.drop_column('flagged')
