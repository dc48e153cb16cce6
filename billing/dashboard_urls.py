"""Billing's dashboard pages, under /dashboard/ (hub/urls.py) beside accounts' (accounts/dashboard_urls.py)."""

from django.urls import path

from .views import overview

urlpatterns: list = [
    path("", overview.overview, name="dashboard"),
]
