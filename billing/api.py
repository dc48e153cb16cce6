"""The management API's billing endpoints: usage, balance, checkout, auto-recharge, invoices, and cost per team."""

from datetime import timedelta

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import JSONRenderer, TemplateHTMLRenderer
from rest_framework.response import Response

from accounts import selectors
from accounts.api.base import OrgView, Pages, actor_of, validated
from accounts.serializers import BalanceSerializer, DateRangeSerializer, UsageRecordSerializer, UsageTotalSerializer

from . import export, modes, payments, requestlog, teams
from .invoices import collecting, issuing
from .models import AutoRecharge, BillingMode, UsageRecord
from .money import max_amount
from .selectors import balance_of, usage_records_of, usage_totals_of
from .serializers import InvoiceDetailSerializer, InvoiceSerializer, TeamCostReportSerializer


def _range(request):
    data = validated(DateRangeSerializer, request.query_params)
    return selectors.day_range(data.get("start"), data.get("end"))


class UsageRecords(OrgView, generics.ListAPIView):
    actions = {"GET": "view_usage"}
    serializer_class = UsageRecordSerializer
    pagination_class = Pages

    def get_queryset(self):
        since, until = _range(self.request)
        organization = self.request.organization  # type: ignore[attr-defined]  # set by OrgView, as below
        return usage_records_of(organization=organization, since=since, until=until)

    @extend_schema(parameters=[DateRangeSerializer], summary="Usage records of a date range, newest first")
    def get(self, request, slug):
        return self.list(request)


class UsageExportParams(serializers.Serializer):
    """What the export reads of its query string (validated by requestlog.LogFilter, the dashboard's form)."""

    key = serializers.IntegerField(required=False, help_text="An API key's id")
    model = serializers.CharField(required=False, help_text="The model that served")
    status = serializers.ChoiceField(required=False, choices=UsageRecord.Status.values)
    endpoint = serializers.CharField(required=False, help_text="For example chat.completions")
    start = serializers.DateField(required=False, help_text="First day (default: 30 days before end)")
    end = serializers.DateField(required=False, help_text="Last day, included (default: today)")


class UsageExport(OrgView):
    """The dashboard's request log export (billing/export.py): the same filters, rows and totals row."""

    actions = {"GET": "view_usage"}

    @extend_schema(
        parameters=[UsageExportParams],
        responses={(200, "text/csv"): OpenApiResponse(description="One row per request, then a totals row")},
        summary="Usage records as CSV, filtered, newest first, with a totals row",
    )
    def get(self, request, slug):
        form = requestlog.LogFilter(request.query_params, organization=request.organization)
        if not form.is_valid():
            raise serializers.ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
        return export.csv_response(
            organization=request.organization,
            filters=requestlog.filters_of(form),
            cost=requestlog.shows_cost(request.organization),
            asgi=isinstance(request._request, ASGIRequest),
        )


class UsageTotals(OrgView):
    actions = {"GET": "view_usage"}

    @extend_schema(
        parameters=[DateRangeSerializer],
        responses=UsageTotalSerializer(many=True),
        summary="Requests, tokens and price per model that served (an alias counted as its model) and UTC day",
    )
    def get(self, request, slug):
        since, until = _range(request)
        totals = usage_totals_of(organization=request.organization, since=since, until=until)
        return Response(UsageTotalSerializer(totals, many=True).data)


class Balance(OrgView):
    actions = {"GET": "view_balance"}

    @extend_schema(responses=BalanceSerializer, summary="Credit balance")
    def get(self, request, slug):
        account = balance_of(organization=request.organization)
        data = {"balance": account.balance, "currency": settings.STRIPE_CURRENCY, "updated_at": account.updated_at}
        return Response(BalanceSerializer(data).data)


class CheckoutInput(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=payments.MIN_TOP_UP, max_value=payments.MAX_TOP_UP
    )


class CheckoutOutput(serializers.Serializer):
    url = serializers.URLField()
    payment_id = serializers.IntegerField()


class CheckoutView(OrgView):
    """A Stripe Checkout page for a top-up; credit arrives with Stripe's verified webhook."""

    actions = {"POST": "buy_credits"}

    @extend_schema(request=CheckoutInput, responses={201: CheckoutOutput}, summary="Buy credit")
    def post(self, request, slug):
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        back = request.build_absolute_uri("/")
        payment, url = payments.checkout_create(
            organization=request.organization,
            amount=data.validated_data["amount"],
            requested_by=request.user if not hasattr(request.user, "api_key") else None,
            success_url=f"{back}?checkout=success",
            cancel_url=f"{back}?checkout=cancelled",
        )
        return Response({"url": url, "payment_id": payment.pk}, status=201)


class AutoRechargeSettings(serializers.Serializer):
    enabled = serializers.BooleanField()
    threshold = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, max_value=max_amount())
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=payments.MIN_TOP_UP, max_value=payments.MAX_TOP_UP
    )
    card_saved = serializers.BooleanField(read_only=True)
    disabled_reason = serializers.CharField(read_only=True)


def _auto_recharge_data(recharge) -> dict:
    if recharge is None:
        return {"enabled": False, "threshold": "0.00", "amount": "0.00", "card_saved": False, "disabled_reason": ""}
    return AutoRechargeSettings(
        {
            "enabled": recharge.enabled,
            "threshold": recharge.threshold,
            "amount": recharge.amount,
            "card_saved": bool(recharge.stripe_payment_method_id),
            "disabled_reason": recharge.disabled_reason,
        }
    ).data


class AutoRechargeView(OrgView):
    """Buy credit automatically when the balance falls under a threshold, with the saved card."""

    actions = {"GET": "view_balance", "PUT": "buy_credits"}

    @extend_schema(responses=AutoRechargeSettings, summary="Auto-recharge settings")
    def get(self, request, slug):
        return Response(_auto_recharge_data(AutoRecharge.objects.filter(organization=request.organization).first()))

    @extend_schema(request=AutoRechargeSettings, responses=AutoRechargeSettings, summary="Set auto-recharge")
    def put(self, request, slug):
        data = validated(AutoRechargeSettings, request.data)
        recharge = payments.auto_recharge_configure(organization=request.organization, actor=actor_of(request), **data)
        return Response(_auto_recharge_data(recharge))


class CardSetupOutput(serializers.Serializer):
    setup_intent_id = serializers.CharField()
    client_secret = serializers.CharField()


class CardSetupView(OrgView):
    """Save a card for auto-recharge: confirm the answer's client secret with Stripe.js
    (`stripe.confirmCardSetup`); the card is kept when Stripe's signed setup_intent.succeeded arrives."""

    actions = {"POST": "buy_credits"}

    @extend_schema(request=None, responses={201: CardSetupOutput}, summary="Start saving a card")
    def post(self, request, slug):
        setup = payments.auto_recharge_card_setup(organization=request.organization, actor=actor_of(request))
        return Response({"setup_intent_id": setup.setup_intent_id, "client_secret": setup.client_secret}, status=201)


class InvoiceList(OrgView, generics.ListAPIView):
    actions = {"GET": "view_invoices"}
    serializer_class = InvoiceSerializer
    pagination_class = Pages

    def get_queryset(self):
        # Set by OrgView's permission (accounts/api/base.py), unknown to DRF's Request.
        organization = self.request.organization  # type: ignore[attr-defined]
        return issuing.invoices_of(organization=organization).select_related("organization")

    @extend_schema(summary="Invoices (postpaid organisations), newest first")
    def get(self, request, slug):
        return self.list(request)


def _invoice(request, number):
    return get_object_or_404(
        issuing.invoices_of(organization=request.organization).select_related("organization").prefetch_related("lines"),
        number=number,
    )


class InvoiceDetail(OrgView):
    actions = {"GET": "view_invoices"}

    @extend_schema(responses=InvoiceDetailSerializer, summary="An invoice with its lines")
    def get(self, request, slug, number):
        return Response(InvoiceDetailSerializer(_invoice(request, number)).data)


def invoice_context(invoice) -> dict:
    """What the printable invoice shows; the admin renders it for operators too."""
    return {
        "invoice": invoice,
        "organization": invoice.organization,
        "lines": list(invoice.lines.all()),
        "last_day": invoice.period_end - timedelta(days=1),
        "issuer": getattr(settings, "HUB_INVOICE_ISSUER", ""),
        "auto_charge": collecting.card_to_charge(invoice) is not None,
    }


class InvoicePrint(OrgView):
    """The invoice as a printable page, for a browser signed in to the hub."""

    actions = {"GET": "view_invoices"}
    renderer_classes = [TemplateHTMLRenderer]

    @extend_schema(
        responses={(200, "text/html"): OpenApiResponse(description="The printable invoice")},
        summary="An invoice as a printable page",
    )
    def get(self, request, slug, number):
        return Response(invoice_context(_invoice(request, number)), template_name="billing/invoice.html")

    def finalize_response(self, request, response, *args, **kwargs):
        # Only the invoice itself is a page. A refusal, and OPTIONS (whose metadata has no template), answer
        # in the API's JSON error shape like every other endpoint.
        if response.exception or request.method not in ("GET", "HEAD"):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class TeamCosts(OrgView):
    actions = {"GET": "view_usage"}

    @extend_schema(
        parameters=[DateRangeSerializer],
        responses=TeamCostReportSerializer,
        summary="Requests, cost and price per team and model over UTC days",
    )
    def get(self, request, slug):
        since, until = _range(request)
        report = teams.team_costs(organization=request.organization, since=since, until=until)
        # The provider's cost is the operator's business, except for its own internal teams.
        if modes.effective_mode(getattr(request.organization, "credit", None)) != BillingMode.INTERNAL:
            for team in report:
                team["cost"] = None
                for model in team["models"]:
                    model["cost"] = None
        return Response(
            TeamCostReportSerializer(
                {
                    "start": since.date(),
                    "end": (until - timedelta(days=1)).date(),
                    "rolled_up_at": teams.rolled_up_at(),
                    "teams": report,
                }
            ).data
        )
