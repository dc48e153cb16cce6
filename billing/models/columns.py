"""The column every billing model keeps an amount of money in (billing/money.py: integer units, read as Decimals)."""

from ..money import MoneyField


def money(**kwargs):
    return MoneyField(**kwargs)
