from django import template

from billing.money import for_people

register = template.Library()


@register.filter
def money(amount) -> str:
    """An exact amount for people: at least cents, every further digit it has, never rounded."""
    return for_people(amount)
