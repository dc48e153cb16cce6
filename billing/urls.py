from django.urls import path

from . import api, webhooks

urlpatterns = [
    path("orgs/<slug:slug>/billing/checkout", api.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/stripe/webhook", webhooks.stripe_webhook, name="stripe-webhook"),
]
