"""The dashboard's pages, under /dashboard/ (hub/urls.py)."""

from django.urls import path

from .views import keys, organisations

urlpatterns = [
    path("organisations/new", organisations.organization_create, name="dashboard-create"),
    path("organisations/switch", organisations.switch, name="dashboard-switch"),
    path("invitations/new", organisations.invite, name="dashboard-invite"),
    path("invitations/<str:token>/", organisations.invitation, name="dashboard-invitation"),
    path("invitations/<str:token>/accept", organisations.invitation_accept, name="dashboard-invitation-accept"),
    path("invitations/<str:token>/decline", organisations.invitation_decline, name="dashboard-invitation-decline"),
    path("keys/", keys.key_list, name="dashboard-keys"),
    path("keys/new", keys.key_create, name="dashboard-key-create"),
    path("keys/<int:key_id>/", keys.key_detail, name="dashboard-key-detail"),
    path("keys/<int:key_id>/limits", keys.key_edit, name="dashboard-key-edit"),
    path("keys/<int:key_id>/revoke", keys.key_revoke, name="dashboard-key-revoke"),
    path("keys/<int:key_id>/rotate", keys.key_rotate, name="dashboard-key-rotate"),
]
