"""The dashboard's pages, under /dashboard/ (hub/urls.py)."""

from django.urls import path

from .views import organisations, settings

urlpatterns = [
    path("", organisations.home, name="dashboard"),
    path("organisations/new", organisations.organization_create, name="dashboard-create"),
    path("organisations/switch", organisations.switch, name="dashboard-switch"),
    path("invitations/new", organisations.invite, name="dashboard-invite"),
    path("invitations/<str:token>/", organisations.invitation, name="dashboard-invitation"),
    path("invitations/<str:token>/accept", organisations.invitation_accept, name="dashboard-invitation-accept"),
    path("invitations/<str:token>/decline", organisations.invitation_decline, name="dashboard-invitation-decline"),
    path("settings/", settings.page, name="dashboard-settings"),
    path("settings/profile", settings.profile, name="dashboard-settings-profile"),
    path("settings/preferences", settings.preferences, name="dashboard-settings-preferences"),
    path("settings/organisation", settings.organization, name="dashboard-settings-organization"),
]
