"""The dashboard's team page: the organisation's members and their roles, its invitations, its teams of keys.

Every change goes through the services the management API calls (accounts/services.py, accounts/teams.py), so
the same rules refuse the same things (only an owner makes, unmakes, invites or removes owners; the last owner
stays); a refusal is shown as its form's error. A control the role may not use is not shown, and the view's
`action` refuses the role anyway. Changing a role and removing a member swap their table row in place with
htmx; without script the same forms post and come back to the page.
"""

from dataclasses import dataclass

from django.contrib import messages
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from .. import permissions, selectors, services, teams
from ..dashboard import organization_required
from ..errors import DomainError
from ..forms.team import InvitationForm, KeyTeamForm, RoleForm, TeamForm, offer_roles
from ..models import ApiKey, Invitation, Membership, Team
from .organisations import actor_of

PAGE = "accounts/dashboard/team/page.html"
MEMBER_ROW = "accounts/dashboard/team/member_row.html"


@dataclass
class MemberRow:
    membership: Membership
    form: Form
    is_self: bool
    can_change: bool
    can_remove: bool
    error: str = ""
    notice: str = ""


@dataclass
class InvitationRow:
    invitation: Invitation
    error: str = ""


@dataclass
class TeamRow:
    team: Team
    keys: list[ApiKey]
    form: Form


def _role_form(membership: Membership, data=None) -> RoleForm:
    return RoleForm(data, initial={"role": membership.role}, auto_id=f"id_member_{membership.pk}_%s")


def _rename_form(team: Team, data=None) -> TeamForm:
    return TeamForm(data, initial={"name": team.name}, auto_id=f"id_team_{team.pk}_%s")


def _member_row(request, membership: Membership, *, error: str = "", notice: str = "") -> MemberRow:
    actor_role = request.membership.role
    # Whom the actor may touch at all; what the new role may be is the form's choice, and the service's rule.
    manageable = permissions.may_manage_role(actor_role, membership.role)
    is_self = membership.pk == request.membership.pk
    return MemberRow(
        membership=membership,
        form=offer_roles(_role_form(membership), actor_role),
        is_self=is_self,
        can_change=request.can["change_roles"] and manageable,
        can_remove=request.can["remove_members"] and manageable and not is_self,
        error=error,
        notice=notice,
    )


def _page(request, *, status: int = 200, forms: dict | None = None, errors: dict | None = None, alert: str = ""):
    """The whole page; `forms` are bound forms to show again (by name: invite, team, move, team-<id>) and `errors`
    the refusals to show in their row (member-<id>, invitation-<id>)."""
    forms, errors = forms or {}, errors or {}
    organization, can = request.organization, request.can
    members = [
        _member_row(request, membership, error=errors.get(f"member-{membership.pk}", ""))
        for membership in selectors.members_of(organization=organization)
    ]
    context: dict = {"members": members, "alert": alert}
    if can["invite_members"]:
        context["invite_form"] = offer_roles(forms.get("invite") or InvitationForm(), request.membership.role)
        context["invitations"] = [
            InvitationRow(invitation, errors.get(f"invitation-{invitation.pk}", ""))
            for invitation in selectors.invitations_of(organization=organization)
            if invitation.status == "pending"
        ]
    if can["view_keys"]:
        context["teams"] = [
            TeamRow(team, list(team.api_keys.all()), forms.get(f"team-{team.pk}") or _rename_form(team))
            for team in teams.teams_of(organization=organization)
        ]
        context["keys_without_team"] = list(selectors.keys_of(organization=organization).filter(team=None))
    if can["manage_teams"]:
        context["team_form"] = forms.get("team") or TeamForm()
        context["move_form"] = forms.get("move") or KeyTeamForm(organization=organization)
    return render(request, PAGE, context, status=status)


def _back(request, message: str = ""):
    if message:
        messages.success(request, message)
    return redirect("dashboard-team")


@organization_required(action="view_members")
def page(request):
    return _page(request)


@require_POST
@organization_required(action="invite_members")
def invite(request):
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            services.invitation_create(
                organization=request.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor_role=request.membership.role,
                actor=actor_of(request),
                accept_url_base=request.build_absolute_uri("/"),
            )
        except DomainError as error:
            form.add_error(None, str(error))
        else:
            return _back(request, _("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]})
    return _page(request, status=400, forms={"invite": form})


@require_POST
@organization_required(action="invite_members")
def invitation_revoke(request, pk: int):
    invitation = get_object_or_404(selectors.invitations_of(organization=request.organization), pk=pk)
    try:
        services.invitation_revoke(invitation=invitation, actor=actor_of(request))
    except DomainError as error:
        # Not pending any more, so not listed: the refusal heads the page.
        return _page(request, status=400, alert=str(error))
    return _back(request, _("The invitation to %(email)s was withdrawn.") % {"email": invitation.email})


# Members: htmx swaps the row with the answer (200 even for a refusal: htmx swaps only a success's body).


def _member_refused(request, membership: Membership, message: str):
    if request.htmx:
        return render(request, MEMBER_ROW, {"row": _member_row(request, membership, error=message)})
    return _page(request, status=400, errors={f"member-{membership.pk}": message})


def _own_change(request, message: str, *, to: str = "dashboard-team"):
    """After changing one's own role or membership every control on the page may differ: reload it all."""
    messages.success(request, message)
    url = reverse(to)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@organization_required(action="change_roles")
def member_role(request, pk: int):
    membership = get_object_or_404(selectors.members_of(organization=request.organization), pk=pk)
    form = _role_form(membership, request.POST)
    if not form.is_valid():
        return _member_refused(request, membership, " ".join(str(message) for message in form.errors["role"]))
    try:
        services.membership_change_role(
            membership=membership,
            role=form.cleaned_data["role"],
            actor_role=request.membership.role,
            actor=actor_of(request),
        )
    except DomainError as error:
        return _member_refused(request, membership, str(error))
    notice = _("%(name)s is now %(role)s.") % {
        "name": membership.user.get_username(),
        "role": membership.get_role_display(),
    }
    if membership.pk == request.membership.pk:
        return _own_change(request, notice)
    if request.htmx:
        return render(request, MEMBER_ROW, {"row": _member_row(request, membership, notice=notice)})
    return _back(request, notice)


@require_POST
@organization_required(action="remove_members")
def member_remove(request, pk: int):
    membership = get_object_or_404(selectors.members_of(organization=request.organization), pk=pk)
    is_self, name = membership.pk == request.membership.pk, membership.user.get_username()
    try:
        services.membership_remove(membership=membership, actor_role=request.membership.role, actor=actor_of(request))
    except DomainError as error:
        return _member_refused(request, membership, str(error))
    if is_self:
        return _own_change(request, _("You left %(name)s.") % {"name": request.organization.name}, to="dashboard")
    if request.htmx:
        return HttpResponse("")  # the row is swapped for nothing
    return _back(request, _("%(name)s was removed from the organisation.") % {"name": name})


@require_POST
@organization_required
def leave(request):
    try:
        services.membership_leave(membership=request.membership, actor=actor_of(request))
    except DomainError as error:
        return _page(request, status=400, errors={f"member-{request.membership.pk}": str(error)})
    messages.success(request, _("You left %(name)s.") % {"name": request.organization.name})
    return redirect("dashboard")  # the user's next organisation, or the page that starts one


# Teams of keys.


def _team_of(request, pk: int) -> Team:
    return get_object_or_404(teams.teams_of(organization=request.organization), pk=pk)


@require_POST
@organization_required(action="manage_teams")
def team_create(request):
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = teams.team_create(
                organization=request.organization, name=form.cleaned_data["name"], actor=actor_of(request)
            )
        except DomainError as error:
            form.add_error("name", str(error))
        else:
            return _back(request, _("The team %(name)s was created.") % {"name": team.name})
    return _page(request, status=400, forms={"team": form})


@require_POST
@organization_required(action="manage_teams")
def team_rename(request, pk: int):
    team = _team_of(request, pk)
    form = _rename_form(team, request.POST)
    if form.is_valid():
        try:
            teams.team_rename(team=team, name=form.cleaned_data["name"], actor=actor_of(request))
        except DomainError as error:
            form.add_error("name", str(error))
        else:
            return _back(request, _("The team is now called %(name)s.") % {"name": team.name})
    return _page(request, status=400, forms={f"team-{pk}": form})


@require_POST
@organization_required(action="manage_teams")
def team_delete(request, pk: int):
    team = _team_of(request, pk)
    name = team.name
    teams.team_delete(team=team, actor=actor_of(request))
    return _back(request, _("The team %(name)s was deleted; its keys are in no team now.") % {"name": name})


@require_POST
@organization_required(action="manage_teams")
def key_team(request):
    form = KeyTeamForm(request.POST, organization=request.organization)
    if form.is_valid():
        api_key, team = form.cleaned_data["api_key"], form.cleaned_data["team"]
        try:
            teams.api_key_team_set(api_key=api_key, team=team, actor=actor_of(request))
        except DomainError as error:
            form.add_error(None, str(error))
        else:
            if team is None:
                return _back(request, _("The key %(key)s is in no team now.") % {"key": api_key.name})
            return _back(
                request, _("The key %(key)s is in the team %(team)s now.") % {"key": api_key.name, "team": team.name}
            )
    return _page(request, status=400, forms={"move": form})
