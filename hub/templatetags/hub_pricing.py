"""{% public_pricing_url as url %}: the public pricing page's address while HUB_PUBLIC_PRICING is on, else ""
(templates/base.html and templates/hub/home.html link it only then)."""

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.simple_tag
def public_pricing_url() -> str:
    return reverse("pricing") if settings.HUB_PUBLIC_PRICING else ""
