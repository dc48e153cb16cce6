"""The management API's billing endpoints."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.api import OrgView

from . import payments


class CheckoutInput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2,
                                      min_value=payments.MIN_TOP_UP, max_value=payments.MAX_TOP_UP)


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
            organization=request.organization, amount=data.validated_data["amount"],
            requested_by=request.user if not hasattr(request.user, "api_key") else None,
            success_url=f"{back}?checkout=success", cancel_url=f"{back}?checkout=cancelled",
        )
        return Response({"url": url, "payment_id": payment.pk}, status=201)
