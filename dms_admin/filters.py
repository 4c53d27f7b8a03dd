"""Filters that take a value of their declared type or refuse the request with 400 naming the
parameter, so that the API does what its schema says (dms_admin/schema.py reads the bounds from
these fields). django-filter quietly ignored `?role=`, `?maintenance=maybe` and `?cluster=2.5`,
and refused an unknown id with "Select a valid choice": here an empty value for anything but
text is refused, yes/no takes `true` or `false`, a related object is filtered by its id (an id
nobody has matches nothing), and a time takes any RFC 3339 offset. The pages drop empty values
before filtering (a form's "All")."""

import re
from datetime import UTC, datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django_filters.fields import IsoDateTimeField

ID_MAX = 2**63 - 1  # ids are bigints: a larger number is refused, not sent to the database
EMPTY = "Give a value, or leave the parameter out."
WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def whole_number(raw: str) -> int | None:
    """`raw` as an int when it is written as one in ASCII digits, else None (`int()` also takes
    " 5", "5_000" and other scripts' digits, which the schema's `integer` does not)."""
    return int(raw) if WHOLE_NUMBER.fullmatch(raw) else None


class WholeNumberField(forms.IntegerField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = whole_number(str(value))
        if number is None:
            raise ValidationError(f"“{str(value)[:40]}” is not a whole number.", code="invalid")
        return number


class TrueFalseField(forms.Field):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        if value in ("true", "false"):
            return value == "true"
        raise ValidationError("Must be true or false.", code="invalid")


class UtcDateTimeField(IsoDateTimeField):
    """The instant in UTC: PostgreSQL refuses offsets past ±15:59 that RFC 3339 allows (+18:03)."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # within a day of year 1 or 9999: the first or last instant there is
            return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


class IdFilter(django_filters.NumberFilter):
    """An object's id, from 1 to the largest bigint."""

    field_class = WholeNumberField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


class TrueFalseFilter(django_filters.BooleanFilter):
    field_class = TrueFalseField


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class RefusesEmptyValues(forms.Form):
    """A parameter sent empty is refused, unless it is text (an empty text matches everything)."""

    def clean(self):
        for name, field in self.fields.items():
            if isinstance(field, forms.CharField) or name not in self.data:
                continue
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data[name]]
            if any(not str(value).strip() for value in values):
                self.errors.pop(name, None)
                self.add_error(name, EMPTY)
        return super().clean()


class StrictFilterSet(django_filters.FilterSet):
    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.BooleanField: {"filter_class": TrueFalseFilter},
        models.DateTimeField: {"filter_class": UtcDateTimeFilter},
    }

    def get_form_class(self):
        form = super().get_form_class()
        return type(form.__name__, (RefusesEmptyValues, form), {})
