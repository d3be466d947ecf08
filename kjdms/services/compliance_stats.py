"""Statistics panels on how the collection keeps its rules: rejection reasons by item, late registrations and updates.

They count within the same snapshot and drill-down rows as services/statistics.py: a history row or a working
copy counts in the row of its effective dossier's region as it stood at the cutoff, and only when that dossier
is in the user's scope then.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Integer, Text, and_, case, cast, func, or_, select
from sqlalchemy.orm import aliased

from ..local_time import end_of_day
from ..models import Dossier, DossierRevision, WorkflowHistory
from ..vocabulary import REJECTABLE_ITEMS
from .statistics import Groups, Table, WorkflowNames, _expression, _json_value, in_groups

NO_ITEM = "none"
NO_ITEM_TITLE = "未勾选具体项目"
REJECTION_NOTE = ("截至当日的全部退回（含信息变更的退回），按档案当日的归属地区计；一次退回勾选几个项目就在几个项目下各计一次，"
                  "未勾选项目的退回计入“未勾选具体项目”。")
LATE_NOTE = ("辽财会〔2019〕116号 三：从事会计工作后一个月内登记，信息变化后一个月内更新。"
             "逾期登记：新登记人员（原系统人员除外）的登记日期（北京时间）晚于所填“从事会计工作日期”的下月同日"
             "（下月无此日则为下月末日）；只计截至当日已登记、已填写该日期的人员。"
             "逾期更新：截至当日已提交的信息变更单，其首次提交日期晚于所填“信息变更日期”的下月同日；"
             "变更单所填日期与档案在变更单建立前最后记录的日期相同的，不算新的变化，不计。"
             "日期取现在填写的值（审核中更正过的以更正后为准），已删除个人信息的人员不计。")
ITEMS = {**REJECTABLE_ITEMS, NO_ITEM: NO_ITEM_TITLE}
LATE_COLUMNS = [("registered", "新登记（已填从事会计工作日期）"), ("late_registration", "逾期登记"),
                ("updates", "信息变更（已提交、有变更日期）"), ("late_update", "逾期更新")]


def _iso_day(dialect: str, column):
    """Return a stored date as YYYY-MM-DD text."""
    return func.date(column) if dialect == "sqlite" else func.to_char(column, "YYYY-MM-DD")


def _local_day(dialect: str, column):
    """Return the Beijing calendar day of a stored UTC time as YYYY-MM-DD text."""
    if dialect == "sqlite":
        return func.date(column, "+8 hours")
    return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM-DD")


def more_than_a_month_after(later, earlier):
    """Return the condition: ISO day later is after the same day of the month following ISO day earlier.

    time_rules.one_month_after clamps to the month's end (1月31日 → 2月28日); in the following month a day is
    past the clamped day exactly when its day number is greater than earlier's, so no clamping is needed here.
    """
    def month(day):
        return cast(func.substr(day, 1, 4), Integer) * 12 + cast(func.substr(day, 6, 2), Integer)

    def day_number(day):
        return cast(func.substr(day, 9, 2), Integer)

    months = month(later) - month(earlier)
    return or_(months > 1, and_(months == 1, day_number(later) > day_number(earlier)))


def rejection_reasons(session, snap, groups: Groups, day: date, names: WorkflowNames) -> Table:
    """Return the rejections up to the cutoff counted under each flagged item, by region."""
    cutoff = end_of_day(day)
    region = _expression(snap, groups, "region", day).label("region")
    flagged = cast(WorkflowHistory.flagged, Text)
    # An empty JSON list is the only value without a quoted string in it.
    sums = [func.sum(case((~flagged.contains('"'), 1), else_=0)) if code == NO_ITEM
            else func.sum(case((flagged.contains(f'"{code}"', autoescape=True), 1), else_=0)) for code in ITEMS]
    effective = func.coalesce(Dossier.baseline_id, Dossier.id)
    query = (select(region, *sums)
             .join(Dossier, Dossier.id == WorkflowHistory.dossier_id)
             .join(snap, snap.c.dossier_id == effective)
             .where(WorkflowHistory.action == names.reject, WorkflowHistory.created_at < cutoff,
                    in_groups(snap, groups))
             .group_by(region))
    return rejection_table(groups, {(code, key): n for key, *counts in session.execute(query)
                                    for code, n in zip(ITEMS, counts)})


def rejection_table(groups: Groups, cells: dict[tuple[str, str], int]) -> Table:
    """Return the rejection-reasons panel from (item code, drill-down row) → rejections."""
    table = Table("collection_rejection_items", "退回原因（按项目）", "有问题的项目", list(ITEMS.items()),
                  [(key, groups.titles[key]) for key in groups.keys], chart="stacked", unit="次")
    table.cells = {cell: n for cell, n in cells.items() if n}
    table.note = REJECTION_NOTE
    return table


def changed_on_before_copy(dialect: str, copy):
    """Return the change date a working copy's baseline held when the copy was made: its last revision before then."""
    return (select(_json_value(dialect, DossierRevision.fields, "information_changed_on"))
            .where(DossierRevision.dossier_id == copy.baseline_id, DossierRevision.recorded_at <= copy.created_at)
            .order_by(DossierRevision.recorded_at.desc(), DossierRevision.id.desc())
            .limit(1).scalar_subquery())


def late_registrations_and_updates(session, snap, groups: Groups, day: date, names: WorkflowNames) -> Table:
    """Return per region the registrations and submitted changes up to the cutoff, and how many were late (三).

    Today's page counts the same from the statistics counters (services/counted_statistics.py).
    """
    dialect = session.get_bind().dialect.name
    cutoff = end_of_day(day)
    region = _expression(snap, groups, "region", day).label("region")
    started = _iso_day(dialect, Dossier.job_started_on)
    late_registration = more_than_a_month_after(_local_day(dialect, Dossier.created_at), started)
    query = (select(region, func.count(), func.sum(case((late_registration, 1), else_=0)))
             .join(Dossier, Dossier.id == snap.c.dossier_id)
             .where(snap.c.is_legacy == 0, Dossier.job_started_on.is_not(None), in_groups(snap, groups))
             .group_by(region))
    registrations = {key: (n, late or 0) for key, n, late in session.execute(query)}

    copy = aliased(Dossier)
    # Per working copy through the history's dossier index: copies are few, the history of every dossier is not.
    first_submitted = (select(func.min(WorkflowHistory.created_at))
                       .where(WorkflowHistory.dossier_id == copy.id, WorkflowHistory.action == names.submit,
                              WorkflowHistory.created_at < cutoff)
                       .scalar_subquery())
    before_copy = changed_on_before_copy(dialect, copy)
    changed = _iso_day(dialect, copy.information_changed_on)
    late_update = more_than_a_month_after(_local_day(dialect, first_submitted), changed)
    updates = (select(region, func.count(), func.sum(case((late_update, 1), else_=0)))
               .select_from(copy)
               .join(snap, snap.c.dossier_id == copy.baseline_id)
               .where(copy.baseline_id.is_not(None), first_submitted.is_not(None),
                      copy.information_changed_on.is_not(None),
                      or_(before_copy.is_(None), before_copy != changed), in_groups(snap, groups))
               .group_by(region))
    return late_table(groups, registrations, {key: (n, late or 0) for key, n, late in session.execute(updates)})


def late_table(groups: Groups, registrations: dict[str, tuple[int, int]], updates: dict[str, tuple[int, int]]) -> Table:
    """Return the one-month-rule panel from per drill-down row (registered, late) and (changes filed, late)."""
    table = Table("collection_late", "逾期登记与逾期更新（一个月规则）", "地区",
                  [(key, groups.titles[key]) for key in groups.keys], list(LATE_COLUMNS), unit="人次")
    table.note = LATE_NOTE
    for key, (n, late) in registrations.items():
        table.cells.update({(key, "registered"): n, (key, "late_registration"): late})
    for key, (n, late) in updates.items():
        table.cells.update({(key, "updates"): n, (key, "late_update"): late})
    return table


def compliance_tables(session, snap, groups: Groups, day: date, names: WorkflowNames) -> list[Table]:
    """Return the panels on the rules: rejection reasons by item, late registrations and updates."""
    return [rejection_reasons(session, snap, groups, day, names),
            late_registrations_and_updates(session, snap, groups, day, names)]
