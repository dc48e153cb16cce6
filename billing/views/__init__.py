"""Billing's dashboard pages (/dashboard/, billing/dashboard_urls.py), one module per page: thin views over
billing's services and selectors, scoped to the current organisation by accounts/dashboard.py."""
