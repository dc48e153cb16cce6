"""The settings page's forms: the user's name, their time zone and language, the organisation's name."""

from django import forms
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from ..models import Organization, User, time_zone_names


def time_zone_choices() -> list[tuple[str, str]]:
    return [("", _("The site's (%(zone)s)") % {"zone": settings.TIME_ZONE})] + [
        (name, name.replace("_", " ")) for name in time_zone_names()
    ]


def language_choices() -> list[tuple[str, str | Promise]]:
    # Each language in itself, as the footer's switch names them.
    return [("", _("The browser's")), *settings.LANGUAGES]


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name"]
        labels = {"first_name": _("First name"), "last_name": _("Last name")}


class PreferencesForm(forms.ModelForm):
    """The model's validators check the values again: a forged one is refused either way."""

    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        choices=time_zone_choices,
        required=False,
        help_text=_("Times on the dashboard are shown in this zone."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=language_choices,
        required=False,
        help_text=_("The pages' language while you are signed in; the footer's switch changes it too."),
    )

    class Meta:
        model = User
        fields = ["time_zone", "language"]


class OrganizationNameForm(forms.Form):
    name = forms.CharField(
        label=_("Organisation name"), max_length=Organization._meta.get_field("name").max_length, strip=True
    )
