"""The catalogue as pages: the dashboard's models (/dashboard/models/, every role) and the public pricing page
(/pricing/, no sign-in, HUB_PUBLIC_PRICING).

Nothing here computes a price or an availability: the prices are hub.listing.prices (what /v1/models shows,
per million instead of per token), after the organisation's price plan on the dashboard and at list prices on
the public page; availability is hub.status.usable_routes (what /v1/status counts). "May use" on the
dashboard is the organisation's own policy (hub.policy.may_use over its allowed_models), not one key's.
"""

from dataclasses import dataclass
from typing import cast

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from accounts.dashboard import organization_required
from billing.models import CreditAccount
from billing.ratecard import Plan
from providers.models import CatalogModel

from . import catalogue, listing, status
from .auth import plan_of
from .policy import NO_POLICY, Policy, may_use

TEMPLATES = "hub/"
CAPABILITIES = {"tools": _("Tools"), "vision": _("Vision"), "json": _("JSON output")}
# The catalogue's kinds (providers.models.CatalogModel.Kind), in the pages' language.
KINDS: dict[str, str | Promise] = {
    CatalogModel.Kind.CHAT: _("Chat"),
    CatalogModel.Kind.EMBEDDING: _("Embedding"),
    CatalogModel.Kind.IMAGE: _("Image generation"),
    CatalogModel.Kind.AUDIO: _("Speech (text to audio)"),
    CatalogModel.Kind.TRANSCRIPTION: _("Transcription (audio to text)"),
}


@dataclass(frozen=True)
class Entry:
    """One model as the pages show it."""

    model: catalogue.Model
    kind_label: str
    prices: dict
    availability: str = ""  # available, degraded, unavailable; empty: not shown (the public page)

    @property
    def capabilities(self) -> list[str]:
        """Tools, vision and JSON output are what a chat request may ask for: other kinds have none of them."""
        model = self.model
        if model.kind != CatalogModel.Kind.CHAT:
            return []
        flags = {"tools": model.supports_tools, "vision": model.supports_vision, "json": model.supports_json}
        return [name for name, on in flags.items() if on]


class CatalogueFilter(forms.Form):
    """The pages' search: a GET form; every field optional."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    provider = forms.ChoiceField(label=_("Provider"), required=False)
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All kinds")), *KINDS.items()])
    capability = forms.ChoiceField(
        label=_("Capability"), required=False, choices=[("", _("Any capability")), *CAPABILITIES.items()]
    )

    def __init__(self, data, *, providers: list[str]):
        super().__init__(data)
        provider = cast(forms.ChoiceField, self.fields["provider"])
        provider.choices = [("", _("All providers")), *((name, name) for name in providers)]

    def matches(self, entry: Entry) -> bool:
        wanted = self.cleaned_data
        model = entry.model
        needle = wanted["q"].strip().casefold()
        return (
            (not needle or needle in model.public_id.casefold() or needle in model.alias.casefold())
            and (not wanted["provider"] or model.owned_by == wanted["provider"])
            and (not wanted["kind"] or model.kind == wanted["kind"])
            and (not wanted["capability"] or wanted["capability"] in entry.capabilities)
        )


async def _entries(policy: Policy, plan: Plan | None, *, live: bool) -> list[Entry]:
    snapshot = await catalogue.snapshot()
    models = [m for m in snapshot.listed if may_use(policy, m)]
    usable = await status.usable_routes(models) if live else {}
    return [
        Entry(
            model=m,
            kind_label=str(KINDS.get(m.kind, m.kind)),
            prices=listing.prices(m.routes[0].rate, m.kind, plan) if m.routes else {},
            availability=_availability(usable[m.id], len(m.routes)) if live else "",
        )
        for m in models
    ]


def _availability(usable: int, routes: int) -> str:
    if not usable:
        return "unavailable"
    return "available" if usable == routes else "degraded"


def organization_entries(organization, *, live: bool = True) -> list[Entry]:
    """What the organisation may use (its own allowed_models), at its price plan's prices, with availability."""
    account = CreditAccount.objects.select_related("price_plan").filter(organization=organization).first()
    policy = Policy(allowed_models=tuple(organization.allowed_models or ()))
    return async_to_sync(_entries)(policy, plan_of(account), live=live)


def public_entries() -> list[Entry]:
    """Every model the catalogue offers (enabled, with a route), at list prices."""
    return async_to_sync(_entries)(NO_POLICY, None, live=False)


def _filtered(request, entries: list[Entry]) -> tuple[CatalogueFilter, list[Entry], int]:
    form = CatalogueFilter(request.GET, providers=sorted({e.model.owned_by for e in entries}))
    if not form.is_valid():
        return form, entries, 400
    return form, [e for e in entries if form.matches(e)], 200


def _page(request, template: str, entries: list[Entry], context: dict) -> HttpResponse:
    form, shown, code = _filtered(request, entries)
    context = {**context, "form": form, "entries": shown, "total": len(entries), "currency": _currency()}
    if request.htmx and not request.htmx.history_restore_request:
        template = f"{TEMPLATES}catalogue_table.html"
    return render(request, template, context, status=code)


def _currency() -> str:
    return settings.STRIPE_CURRENCY.upper()


@require_GET
@organization_required
def models(request) -> HttpResponse:
    entries = organization_entries(request.organization)
    return _page(request, f"{TEMPLATES}dashboard/models.html", entries, {"live": True})


@require_GET
@organization_required
def availability(request) -> HttpResponse:
    """The availability badges of the page's models (its filters applied), swapped in by id every 30 s."""
    _, shown, code = _filtered(request, organization_entries(request.organization))
    return render(request, f"{TEMPLATES}dashboard/models_availability.html", {"entries": shown}, status=code)


@require_GET
def pricing(request) -> HttpResponse:
    if not settings.HUB_PUBLIC_PRICING:
        raise Http404
    return _page(request, f"{TEMPLATES}pricing.html", public_entries(), {"live": False})
