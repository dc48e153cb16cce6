from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from .api import audit, docs, invitations, keys, members, organisations, teams

org = "orgs/<slug:slug>/"

# Usage, balance, invoices and the cost of teams are billing's, under the same prefix (billing/urls.py).
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="manage-schema"),
    path("docs/", docs.Docs.as_view(url_name="manage-schema"), name="manage-docs"),
    path("orgs/", organisations.OrganizationList.as_view()),
    path(org, organisations.OrganizationDetail.as_view()),
    path(org + "keys/", keys.KeyList.as_view()),
    path(org + "keys/<int:key_id>", keys.KeyDetail.as_view()),
    path(org + "keys/<int:key_id>/revoke", keys.KeyRevoke.as_view()),
    path(org + "keys/<int:key_id>/rotate", keys.KeyRotate.as_view()),
    path(org + "teams/", teams.TeamList.as_view()),
    path(org + "teams/<int:team_id>", teams.TeamDetail.as_view()),
    path(org + "members/", members.MemberList.as_view()),
    path(org + "members/<int:member_id>", members.MemberDetail.as_view()),
    path(org + "leave", members.Leave.as_view()),
    path(org + "invitations/", invitations.InvitationList.as_view()),
    path(org + "invitations/<int:invitation_id>", invitations.InvitationDetail.as_view()),
    path("invitations/<str:token>/accept", invitations.InvitationByToken.as_view()),
    path("invitations/<str:token>/decline", invitations.InvitationByToken.as_view(decline=True)),
    path(org + "audit/", audit.AuditLog.as_view()),
]
