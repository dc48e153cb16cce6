"""The dashboard's pages, under /dashboard/ (hub/urls.py)."""

from django.urls import path

from .views import organisations

urlpatterns = [
    path("organisations/new", organisations.organization_create, name="dashboard-create"),
    path("organisations/switch", organisations.switch, name="dashboard-switch"),
    path("invitations/new", organisations.invite, name="dashboard-invite"),
    path("invitations/<str:token>/", organisations.invitation, name="dashboard-invitation"),
    path("invitations/<str:token>/accept", organisations.invitation_accept, name="dashboard-invitation-accept"),
    path("invitations/<str:token>/decline", organisations.invitation_decline, name="dashboard-invitation-decline"),
]
