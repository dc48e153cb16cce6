"""What every page's layout (templates/base.html) shows."""

from django.conf import settings

from . import selectors
from .dashboard import SESSION_KEY


def site(request) -> dict:
    context = {"hub_site_name": settings.HUB_SITE_NAME, "hub_signup_open": settings.HUB_SIGNUP_MODE != "closed"}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # The header's organisation switcher: lazy, so a page that does not show it costs no query.
        context["hub_memberships"] = selectors.memberships_of_user(user=user).order_by("organization__name", "pk")
        context["hub_organization_id"] = request.session.get(SESSION_KEY)
    return context
