"""The back office's own forms (on SecureForm): choices are read from the administrator's scope only."""
from __future__ import annotations

from wtforms import (BooleanField, DateField, HiddenField, IntegerField, SelectField, SelectMultipleField,
                     StringField, TextAreaField)
from wtforms.validators import DataRequired, Length, Optional

from ..services.api_clients import MAX_NAME
from ..vocabulary import STAFF_ROLES
from .base import SecureForm


# Choices are {value: label}, as on the site's own forms: WTForms 3.3 deprecates (value, label) tuples.
def region_choices(regions) -> dict[int, str]:
    """Return {id: 辽宁省 / 朝阳市 / 双塔区} for each region given, in the order given."""
    return {region.id: region.path_name for region in regions}


def role_choices(blank: str | None = None) -> dict[str, str]:
    """Return the staff roles in Chinese, with a blank first choice when blank is given."""
    return ({"": blank} if blank is not None else {}) | STAFF_ROLES


class AccountForm(SecureForm):
    """A new staff account of an office in scope, with its first role."""

    username = StringField("用户名", validators=[DataRequired("用户名：必填"), Length(max=32)],
                           description="登录用，3–32位，以字母开头，只用字母、数字和 _ . -")
    display_name = StringField("姓名", validators=[DataRequired("姓名：必填"), Length(max=64)])
    region = SelectField("所属单位（地区）", coerce=int)
    department = StringField("科室", validators=[Optional(), Length(max=64)], description="如：会计科")
    phone = StringField("联系电话", validators=[Optional(), Length(max=32)])
    role = SelectField("角色", choices=role_choices("（暂不授予）"))


class GrantForm(SecureForm):
    """A role to give at a region of the scope."""

    role = SelectField("角色", choices=role_choices())
    region = SelectField("地区", coerce=int)


class RoleForm(SecureForm):
    """A role held at a region, to take away."""

    role = HiddenField()
    region = HiddenField()


class ConfirmForm(SecureForm):
    """A button that changes something: only its CSRF token."""


class SettingsForm(SecureForm):
    """The collection windows and the legacy confirmation deadline."""

    collection_windows = TextAreaField("信息采集期", validators=[DataRequired("信息采集期：必填")],
                                       description="起:止，多个采集期用逗号分隔，如 2019-04-15:2019-06-30,2020-04-01:2020-06-30")
    confirmation_deadline = DateField("原系统人员信息更新和确认截止日期", validators=[DataRequired("截止日期：必填")],
                                      description="北京时间，当日为最后一天")


class ApiClientForm(SecureForm):
    """A new API client: which system, what for, about whose persons, and what it may learn."""

    name = StringField("名称", validators=[DataRequired("名称：必填"), Length(max=MAX_NAME, message=f"名称：不超过{MAX_NAME}个字符")],
                       description="调用方系统的名称，如：朝阳市会计资格考试报名系统")
    purpose = TextAreaField("用途", validators=[DataRequired("用途：必填"), Length(max=255)],
                            description="查询的依据和所需信息，写入每次调用的审计记录")
    regions = SelectMultipleField("可查询地区（含下级）", coerce=int,
                                  validators=[DataRequired("可查询地区：至少选择一个")])
    may_see_credit = BooleanField("可获知信用档案中是否有有效记录",
                                  description="仅在确有必要时勾选（如高级资格评审）；其他调用方只得到采集状态")
    expires_on = DateField("到期日期", validators=[Optional()], description="北京时间，当日为最后一天；不填则不过期")
    rate_per_minute = IntegerField("每分钟查询上限（人）", default=1000,
                                   validators=[DataRequired("每分钟查询上限：必填，至少为1")],
                                   description="批量查询按人数计；超出时返回 429 和 Retry-After")
