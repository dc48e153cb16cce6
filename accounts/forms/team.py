"""The team page's forms (accounts/views/team.py): they check input; accounts/services.py and accounts/teams.py
make the change and refuse what the rules refuse (an admin touching an owner, the last owner leaving)."""

from typing import cast

from django import forms
from django.utils.translation import gettext_lazy as _

from .. import permissions, selectors, teams
from ..models import ApiKey, Role, Team
from .organisations import InvitationForm

__all__ = ["InvitationForm", "KeyTeamForm", "RoleForm", "TeamForm", "offer_roles"]


def offer_roles(form: forms.Form, actor_role: str) -> forms.Form:
    """List only the roles the actor may give; the field still accepts every role, so that the service's own
    refusal ("Only an owner can...") is what a forged choice is told."""
    form.fields["role"].widget.choices = [
        (value, label) for value, label in Role.choices if permissions.may_manage_role(actor_role, value)
    ]
    return form


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Team name"), max_length=100)


class KeyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.name} ({obj.prefix}…)"


class KeyTeamForm(forms.Form):
    """Put one of the organisation's keys (not revoked) in one of its teams, or in none."""

    api_key = KeyChoiceField(label=_("Key"), queryset=ApiKey.objects.none(), empty_label=_("Choose a key"))
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("No team")
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        keys = selectors.keys_of(organization=organization).filter(revoked_at=None)
        cast(forms.ModelChoiceField, self.fields["api_key"]).queryset = keys
        cast(forms.ModelChoiceField, self.fields["team"]).queryset = teams.teams_of(organization=organization)
