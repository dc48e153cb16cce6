from django.contrib.admin.apps import AdminConfig


class HubAdminConfig(AdminConfig):
    """django.contrib.admin with the hub's admin site as admin.site (accounts/admin_site.py).

    Every `@admin.register` in the project then lands on the site behind the
    one login and its MFA step (accounts/mfa.py); the label stays "admin".
    """

    default_site = "accounts.admin_site.HubAdminSite"
