from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(amount) -> str:
    """An exact amount for people: at least cents, every further digit it has, never rounded."""
    if amount is None or amount == "":
        return ""
    amount = Decimal(amount)
    exact = amount.normalize()
    if exact.as_tuple().exponent > -2:
        exact = amount.quantize(Decimal("0.01"))
    return f"{exact:,f}"
