from django import forms
from django.contrib import admin
from django.db import models

from billing.models import ModelRate

from .models import CatalogModel, Credential, Provider


class CredentialForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered back, not even encrypted.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False,
        help_text="The provider API key. Leave empty to keep the current one.",
    )

    class Meta:
        model = Credential
        fields = ["provider", "name", "enabled"]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("secret"):
            provider = data.get("provider")
            from .presets import get_preset

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
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "preset", "base_url", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    inlines = [CredentialInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["__str__", "secret_hint", "enabled", "updated_at"]
    list_filter = ["provider", "enabled"]
    fields = ["provider", "name", "secret", "secret_hint", "enabled"]
    readonly_fields = ["secret_hint"]


class ModelRateInline(admin.StackedInline):
    model = ModelRate
    can_delete = False
    fields = [("input_cost", "output_cost", "margin"), ("input_price", "output_price")]


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = ["public_id", "alias", "provider", "upstream_name", "kind", "enabled"]
    list_filter = ["provider", "kind", "enabled"]
    search_fields = ["public_id", "alias", "upstream_name"]
    inlines = [ModelRateInline]
