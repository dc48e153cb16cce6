from django.urls import path

from . import api, webhooks

org = "orgs/<slug:slug>/"

urlpatterns = [
    path(org + "usage/", api.UsageRecords.as_view()),
    path(org + "usage/totals", api.UsageTotals.as_view()),
    path(org + "usage/export.csv", api.UsageExport.as_view(), name="billing-usage-export"),
    path(org + "balance", api.Balance.as_view()),
    path(org + "billing/checkout", api.CheckoutView.as_view(), name="billing-checkout"),
    path(org + "billing/auto-recharge", api.AutoRechargeView.as_view(), name="billing-auto-recharge"),
    path(org + "billing/auto-recharge/card", api.CardSetupView.as_view(), name="billing-card-setup"),
    path(org + "invoices/", api.InvoiceList.as_view(), name="billing-invoices"),
    path(org + "invoices/<str:number>", api.InvoiceDetail.as_view(), name="billing-invoice"),
    path(org + "invoices/<str:number>/print", api.InvoicePrint.as_view(), name="billing-invoice-print"),
    path(org + "teams/costs", api.TeamCosts.as_view(), name="billing-team-costs"),
    path("billing/stripe/webhook", webhooks.stripe_webhook, name="stripe-webhook"),
]
