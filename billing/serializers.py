from typing import TypedDict

from rest_framework import serializers

from .invoices.issuing import invoice_path
from .models import Invoice, InvoiceLine


class _Digits(TypedDict):
    max_digits: int
    decimal_places: int


AMOUNT: _Digits = {"max_digits": 30, "decimal_places": 10}


class InvoiceLineSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_name")
    amount = serializers.DecimalField(**AMOUNT)
    audio_seconds = serializers.DecimalField(max_digits=16, decimal_places=3)

    class Meta:
        model = InvoiceLine
        fields = ["model", "requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds", "amount"]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    subtotal = serializers.DecimalField(**AMOUNT, help_text="The month's usage priced exactly")
    total = serializers.DecimalField(**AMOUNT, help_text="Due: the subtotal rounded to the cent")
    html_url = serializers.SerializerMethodField(help_text="The printable invoice")

    class Meta:
        model = Invoice
        fields = [
            "number",
            "status",
            "period_start",
            "period_end",
            "currency",
            "subtotal",
            "total",
            "issued_at",
            "paid_at",
            "payment_error",
            "html_url",
        ]
        read_only_fields = fields

    def get_html_url(self, invoice) -> str:
        return invoice_path(invoice)


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "lines"]
        read_only_fields = fields


class TeamModelCostSerializer(serializers.Serializer):
    model = serializers.CharField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**AMOUNT, allow_null=True, help_text="The provider cost (internal mode only)")
    price = serializers.DecimalField(**AMOUNT)


class TeamCostSerializer(serializers.Serializer):
    team_id = serializers.IntegerField(allow_null=True, help_text="null: keys in no team, deleted keys, no key")
    team = serializers.CharField(allow_null=True)
    requests = serializers.IntegerField()
    cost = serializers.DecimalField(**AMOUNT, allow_null=True, help_text="The provider cost (internal mode only)")
    price = serializers.DecimalField(**AMOUNT)
    models = TeamModelCostSerializer(many=True)


class TeamCostReportSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="Included")
    rolled_up_at = serializers.DateTimeField(allow_null=True, help_text="The figures are as of this roll-up")
    teams = TeamCostSerializer(many=True)
