"""The dashboard's pages (/dashboard/, accounts/dashboard_urls.py), one module per page: thin views over
accounts/services.py, scoped to the current organisation by accounts/dashboard.py."""
