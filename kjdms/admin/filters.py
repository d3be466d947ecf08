"""List filters in Chinese whose choices come from the administrator's scope, and dates read as Beijing days."""
from __future__ import annotations

from datetime import date

from flask_admin.contrib.sqla.filters import BaseSQLAFilter

from ..local_time import end_of_day


class PerRequest:
    """Filter options read afresh on every page (Flask-Admin keeps a filter's options from start-up otherwise)."""

    def __init__(self, read):
        self.read = read

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(self.read())


class ClauseFilter(BaseSQLAFilter):
    """A filter whose value picks a SQL condition: clause(value) → where-clause."""

    def __init__(self, column, name, clause, options=None, operation="是", data_type=None):
        super().__init__(column, name, options=options, data_type=data_type)
        self.clause, self._operation = clause, operation

    def apply(self, query, value, alias=None):
        return query.filter(self.clause(value))

    def operation(self):
        return self._operation


class IdChoiceFilter(ClauseFilter):
    """A choice of ids: anything but a listed id (a forged one) matches no row."""

    def validate(self, value):
        return str(value).isascii() and str(value).isdigit() and len(str(value)) < 10

    def clean(self, value):
        return int(value)


class DayFilter(ClauseFilter):
    """A Beijing calendar day: on or after (since=True) or on or before it."""

    def __init__(self, column, name, since: bool):
        clause = (lambda day: column >= end_of_day(day.fromordinal(day.toordinal() - 1))) if since else (
            lambda day: column < end_of_day(day))
        super().__init__(column, name, clause, operation="不早于" if since else "不晚于", data_type="datepicker")

    def validate(self, value):
        try:
            date.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True

    def clean(self, value):
        return date.fromisoformat(value)
