from django import forms
from django.contrib import admin
from django.db import models

from accounts.admin import AuditedAdmin

from .models import Credential, Provider
from .presets import get_preset

# Credentials and catalogue models are registered by the gateway's admin
# (hub/admin.py): they show route health and rates, which live above providers.


def secret_of(credential: Credential) -> str:
    """The secret to scrub from what is shown of a credential ("" if it cannot be read: the shapes still go)."""
    try:
        return credential.get_secret() if credential.pk else ""
    except ValueError:
        return ""


class CredentialForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered back, not even encrypted.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="The provider API key. Leave empty to keep the current one.",
    )

    class Meta:
        model = Credential
        fields = ["provider", "name", "enabled"]

    def clean(self):
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean() returns (typed there as perhaps None)
        if not self.instance.pk and not data.get("secret"):
            provider = data.get("provider")
            if provider is not None and get_preset(provider.preset).needs_key:
                self.add_error("secret", "A new credential needs its secret.")
        return data

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
        elif not self.instance.encrypted_secret:
            self.instance.set_secret("")
        return super().save(commit)


class CredentialInline(admin.TabularInline):
    model = Credential
    form = CredentialForm
    extra = 0
    fields = ["name", "secret", "secret_hint", "enabled"]
    readonly_fields = ["secret_hint"]


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin):
    list_display = ["name", "kind", "preset", "base_url", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    inlines = [CredentialInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
