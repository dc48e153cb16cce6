"""The migrations name billing.fields.MoneyField: it lives in billing/money.py."""

from .money import MoneyField, from_units, max_amount, money_value, to_units  # noqa: F401
