"""The dashboard's forms: they check input; the services in accounts/services.py make the change."""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import Organization, Role


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "slug"]
        labels = {"name": _("Name"), "slug": _("Short name")}
        help_texts = {
            "slug": _("Letters, digits, hyphens and underscores; it names the organisation in the API's URLs."),
        }
        error_messages = {"slug": {"unique": _("This short name is taken: choose another.")}}

    def clean_slug(self) -> str:
        return self.cleaned_data["slug"].lower()


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email address"))
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)
