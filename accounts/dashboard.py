"""The dashboard's one scoping rule: every page acts in the signed-in user's current organisation.

The current organisation is kept in the session (`SESSION_KEY`, its id); `organization_required` resolves it
to `request.organization`, `request.membership` and `request.can` (action -> bool, from
accounts.permissions, for templates to hide what the role may not use) and, given an `action`, refuses the
role that may not do it (403). Services check again: hiding a button is not the protection.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from . import permissions, selectors
from .models import Membership

SESSION_KEY = "hub_organization"
INVITATION_KEY = "hub_invitation"  # the token of the invitation last opened, for after sign-up


def current_membership(request) -> Membership | None:
    """The user's membership in the session's organisation, else in their first one (kept from then on)."""
    memberships = selectors.memberships_of_user(user=request.user).order_by("organization__name", "pk")
    membership = memberships.filter(organization_id=request.session.get(SESSION_KEY)).first()
    membership = membership or memberships.first()
    if membership is not None and request.session.get(SESSION_KEY) != membership.organization_id:
        request.session[SESSION_KEY] = membership.organization_id
    return membership


def switch_to(request, organization) -> None:
    request.session[SESSION_KEY] = organization.pk


def organization_required(view=None, *, action: str | None = None):
    """@organization_required, or @organization_required(action="invite_members") to refuse other roles."""
    if action is not None:
        permissions.allows(None, action)  # an unknown action fails at import, not at the first request

    def decorate(view):
        @login_required
        @wraps(view)
        def scoped(request, *args, **kwargs):
            membership = current_membership(request)
            if membership is None:
                # An invitation opened before signing up comes first; otherwise the user starts an organisation.
                token = request.session.get(INVITATION_KEY)
                if token:
                    return redirect("dashboard-invitation", token=token)
                return redirect("dashboard-create")
            if action is not None and not permissions.allows(membership.role, action):
                raise PermissionDenied
            request.membership = membership
            request.organization = membership.organization
            request.can = {name: permissions.allows(membership.role, name) for name in permissions.ACTIONS}
            return view(request, *args, **kwargs)

        return scoped

    return decorate(view) if view is not None else decorate
