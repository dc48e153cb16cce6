"""The dashboard's pages, under /dashboard/ (hub/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="dashboard"),
    path("organisations/new", views.organization_create, name="dashboard-create"),
    path("organisations/switch", views.switch, name="dashboard-switch"),
    path("invitations/new", views.invite, name="dashboard-invite"),
    path("invitations/<str:token>/", views.invitation, name="dashboard-invitation"),
    path("invitations/<str:token>/accept", views.invitation_accept, name="dashboard-invitation-accept"),
    path("invitations/<str:token>/decline", views.invitation_decline, name="dashboard-invitation-decline"),
]
