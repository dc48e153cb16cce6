from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import api

org = "orgs/<slug:slug>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="manage-schema"),
    path("docs/", api.Docs.as_view(url_name="manage-schema"), name="manage-docs"),
    path("orgs/", api.OrganizationList.as_view()),
    path(org + "keys/", api.KeyList.as_view()),
    path(org + "keys/<int:key_id>", api.KeyDetail.as_view()),
    path(org + "keys/<int:key_id>/revoke", api.KeyRevoke.as_view()),
    path(org + "keys/<int:key_id>/rotate", api.KeyRotate.as_view()),
    path(org + "teams/", api.TeamList.as_view()),
    path(org + "teams/<int:team_id>", api.TeamDetail.as_view()),
    path(org + "members/", api.MemberList.as_view()),
    path(org + "members/<int:member_id>", api.MemberDetail.as_view()),
    path(org + "leave", api.Leave.as_view()),
    path(org + "invitations/", api.InvitationList.as_view()),
    path(org + "invitations/<int:invitation_id>", api.InvitationDetail.as_view()),
    path("invitations/<str:token>/accept", api.InvitationByToken.as_view()),
    path("invitations/<str:token>/decline", api.InvitationByToken.as_view(decline=True)),
    path(org + "usage/", api.UsageRecords.as_view()),
    path(org + "usage/totals", api.UsageTotals.as_view()),
    path(org + "balance", api.Balance.as_view()),
    path(org + "audit/", api.AuditLog.as_view()),
]
