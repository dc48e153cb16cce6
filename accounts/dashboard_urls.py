"""The dashboard's pages, under /dashboard/ (hub/urls.py)."""

from django.urls import path

from .views import keys, organisations, settings, team

urlpatterns = [
    path("organisations/new", organisations.organization_create, name="dashboard-create"),
    path("organisations/switch", organisations.switch, name="dashboard-switch"),
    path("invitations/new", team.invite, name="dashboard-invite"),
    path("invitations/<str:token>/", organisations.invitation, name="dashboard-invitation"),
    path("invitations/<str:token>/accept", organisations.invitation_accept, name="dashboard-invitation-accept"),
    path("invitations/<str:token>/decline", organisations.invitation_decline, name="dashboard-invitation-decline"),
    path("keys/", keys.key_list, name="dashboard-keys"),
    path("keys/new", keys.key_create, name="dashboard-key-create"),
    path("keys/<int:key_id>/", keys.key_detail, name="dashboard-key-detail"),
    path("keys/<int:key_id>/limits", keys.key_edit, name="dashboard-key-edit"),
    path("keys/<int:key_id>/revoke", keys.key_revoke, name="dashboard-key-revoke"),
    path("keys/<int:key_id>/rotate", keys.key_rotate, name="dashboard-key-rotate"),
    path("team/", team.page, name="dashboard-team"),
    path("team/members/<int:pk>/role", team.member_role, name="dashboard-team-member-role"),
    path("team/members/<int:pk>/remove", team.member_remove, name="dashboard-team-member-remove"),
    path("team/leave", team.leave, name="dashboard-team-leave"),
    path("team/invitations/<int:pk>/revoke", team.invitation_revoke, name="dashboard-team-invitation-revoke"),
    path("team/teams/new", team.team_create, name="dashboard-team-create"),
    path("team/teams/<int:pk>/rename", team.team_rename, name="dashboard-team-rename"),
    path("team/teams/<int:pk>/delete", team.team_delete, name="dashboard-team-delete"),
    path("team/keys/team", team.key_team, name="dashboard-team-key"),
    path("settings/", settings.page, name="dashboard-settings"),
    path("settings/profile", settings.profile, name="dashboard-settings-profile"),
    path("settings/preferences", settings.preferences, name="dashboard-settings-preferences"),
    path("settings/organisation", settings.organization, name="dashboard-settings-organization"),
]
