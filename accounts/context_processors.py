"""What every page's layout (templates/base.html) shows."""

from django.conf import settings


def site(request) -> dict:
    return {"hub_site_name": settings.HUB_SITE_NAME, "hub_signup_open": settings.HUB_SIGNUP_MODE != "closed"}
