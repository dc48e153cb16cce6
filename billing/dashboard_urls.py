"""Billing's dashboard pages, under /dashboard/ (hub/urls.py) beside accounts' (accounts/dashboard_urls.py)."""

from django.urls import path

from .views import billing, invoices, ledger, overview, requests, settings, usage

urlpatterns = [
    path("", overview.overview, name="dashboard"),
    path("billing/", billing.billing, name="dashboard-billing"),
    path("billing/checkout", billing.checkout, name="dashboard-billing-checkout"),
    path("billing/checkout/done", billing.result, name="dashboard-billing-result"),
    path("billing/auto-recharge", billing.auto_recharge, name="dashboard-billing-auto-recharge"),
    path("billing/auto-recharge/card", billing.card, name="dashboard-billing-card"),
    path("billing/ledger", ledger.ledger, name="dashboard-billing-ledger"),
    path("billing/payments/", invoices.payments, name="dashboard-billing-payments"),
    path("billing/payments/<int:pk>/", invoices.receipt, name="dashboard-billing-receipt"),
    path("billing/payments/<int:pk>/status", billing.payment_status, name="dashboard-billing-payment-status"),
    path("billing/invoices/", invoices.invoices, name="dashboard-billing-invoices"),
    path("billing/invoices/<str:number>/print", invoices.invoice_print, name="dashboard-billing-invoice-print"),
    path("billing/settings", settings.billing_settings, name="dashboard-billing-settings"),
    path("requests/", requests.requests_log, name="dashboard-requests"),
    path("requests/export.csv", requests.requests_export, name="dashboard-requests-export"),
    path("requests/<int:pk>/", requests.request_detail, name="dashboard-request"),
    path("usage/", usage.usage, name="dashboard-usage"),
]
