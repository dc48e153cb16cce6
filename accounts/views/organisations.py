"""The dashboard's organisation pages: create, switch, and the invitation an email's link opens."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from .. import addresses, selectors, services
from ..dashboard import INVITATION_KEY, switch_to
from ..errors import DomainError, NotFound
from ..forms.organisations import OrganizationForm


def actor_of(request) -> services.Actor:
    return services.Actor(user=request.user, ip_address=addresses.client_address(request) or None)


@login_required
def organization_create(request):
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organization = services.organization_create(
            name=form.cleaned_data["name"], slug=form.cleaned_data["slug"], owner=request.user
        )
        switch_to(request, organization)
        messages.success(request, _("%(name)s is ready.") % {"name": organization.name})
        return redirect("dashboard")
    return render(request, "accounts/dashboard/organization_create.html", {"form": form})


@require_POST
@login_required
def switch(request):
    access = selectors.access_of(user=request.user, slug=request.POST.get("organization", ""))
    if access is None:
        raise PermissionDenied
    switch_to(request, access[0])
    return redirect("dashboard")


# Invitations: the email's link opens this page, for anyone holding it; accepting needs the invited address.

STATUS_MESSAGES = {
    "accepted": gettext_lazy("This invitation has already been accepted."),
    "declined": gettext_lazy("This invitation was declined."),
    "revoked": gettext_lazy("This invitation was withdrawn by the organisation."),
    "expired": gettext_lazy("This invitation has expired: ask for a new one."),
}


def _invitation_page(request, token, *, error: str = "", status: int = 200):
    try:
        invitation = services.invitation_by_token(token)
    except NotFound:
        return render(request, "accounts/dashboard/invitation.html", {"missing": True}, status=404)
    state = invitation.status
    user = request.user
    other_email = user.is_authenticated and (user.email or "").lower() != invitation.email.lower()
    if state == "pending" and not other_email:
        request.session[INVITATION_KEY] = token  # so that signing up or in comes back here
    elif request.session.get(INVITATION_KEY) == token:
        del request.session[INVITATION_KEY]  # not this user's to accept: the dashboard must not send them back
    context = {
        "invitation": invitation,
        "token": token,
        "state": state,
        "state_message": STATUS_MESSAGES.get(state, ""),
        "other_email": other_email,
        "error": error if state == "pending" else "",  # otherwise the state's own message says it
        "next": request.path,
    }
    return render(request, "accounts/dashboard/invitation.html", context, status=status if state == "pending" else 410)


def invitation(request, token):
    return _invitation_page(request, token)


@require_POST
@login_required
def invitation_accept(request, token):
    try:
        membership = services.invitation_accept(token=token, user=request.user, actor=actor_of(request))
    except services.PermissionDenied as error:
        return _invitation_page(request, token, error=str(error), status=403)
    except DomainError as error:
        return _invitation_page(request, token, error=str(error), status=400)
    request.session.pop(INVITATION_KEY, None)
    switch_to(request, membership.organization)
    messages.success(
        request,
        _("You joined %(name)s as %(role)s.")
        % {"name": membership.organization.name, "role": membership.get_role_display()},
    )
    return redirect("dashboard")


@require_POST
def invitation_decline(request, token):
    try:
        services.invitation_decline(token=token, actor=actor_of(request) if request.user.is_authenticated else None)
    except DomainError as error:
        return _invitation_page(request, token, error=str(error), status=400)
    request.session.pop(INVITATION_KEY, None)
    messages.info(request, _("You declined the invitation."))
    return redirect("home")
