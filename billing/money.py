"""Money: amounts rounded to the hub's unit, stored as an integer count of it, read back as Decimal.

A leaf module: it imports nothing of the project, so that billing's models and
accounts' models (a key's budget) share one money type (pyproject.toml's import contracts name it).


SQLite keeps NUMERIC values as 64-bit floats (15 significant digits) and adds
them up as floats, so a balance of 1,000,000 with 10 decimal places would drift
there. An integer of 10⁻¹⁰ units is exact on every backend, in sums too, up to
about ±9.2 × 10⁸ credits per row.
"""

from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.conf import settings
from django.core import validators
from django.db import models
from django.db.models.expressions import Combinable
from django.utils.functional import cached_property


def _scale() -> int:
    return settings.MONEY_DECIMAL_PLACES


QUANTUM = Decimal(1).scaleb(-settings.MONEY_DECIMAL_PLACES)


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def to_units(amount) -> int:
    return int((Decimal(amount).scaleb(_scale())).to_integral_value(rounding=ROUND_HALF_UP))


def from_units(units: int) -> Decimal:
    return Decimal(int(units)).scaleb(-_scale())


def max_amount() -> Decimal:
    """The largest amount a MoneyField holds (a signed 64-bit count of units); its negative is the least."""
    return from_units(2**63 - 1)


class MoneyField(models.BigIntegerField):
    description = "An exact amount of money (Decimal, stored as integer units)"
    # For django-stubs' plugin: a model's money attribute takes and gives Decimal, not the integer it stores
    # (its way for a custom field; it differs from BigIntegerField's on purpose).
    _pyi_private_set_type: Decimal | int | str | Combinable  # type: ignore[assignment]
    _pyi_private_get_type: Decimal  # type: ignore[assignment]
    _pyi_lookup_exact_type: Decimal | int | str  # type: ignore[assignment]
    _validators: list  # Field's own, from its validators argument (not in the stubs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else from_units(value)

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(str(value))

    def get_prep_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return to_units(value)

    @cached_property
    def validators(self):
        # The column's range in credits: BigIntegerField's own validators would compare credits to the
        # range of its units, so an amount too large for the column would reach the database.
        return [
            *self.default_validators,
            *self._validators,
            validators.MinValueValidator(-max_amount()),
            validators.MaxValueValidator(max_amount()),
        ]

    def formfield(self, form_class=None, choices_form_class=None, **kwargs):
        # Field.formfield, not the integer one: a Decimal field that knows blank, label, help text.
        return models.Field.formfield(
            self,
            form_class=form_class or forms.DecimalField,
            choices_form_class=choices_form_class,
            **{
                "decimal_places": _scale(),
                "max_digits": 19,
                "min_value": -max_amount(),
                "max_value": max_amount(),
                **kwargs,
            },
        )

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else str(value)


def money_value(amount: Decimal):
    """An amount as a SQL value of the money type, for F() arithmetic."""
    return models.Value(amount, output_field=MoneyField())


def for_people(amount) -> str:
    """An exact amount for people: at least cents, every further digit it has, never rounded."""
    if amount is None or amount == "":
        return ""
    amount = Decimal(amount)
    exact = amount.normalize()
    if exact.as_tuple().exponent > -2:
        exact = amount.quantize(Decimal("0.01"))
    return f"{exact:,f}"
