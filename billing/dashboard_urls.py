"""Billing's dashboard pages, under /dashboard/ (hub/urls.py) beside accounts' (accounts/dashboard_urls.py)."""

from django.urls import path  # noqa: F401  (the pages' routes are added here)

urlpatterns: list = []
