"""Invitations: sent by an organisation's members, answered by the invitee from the email's link."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import selectors, serializers, services
from .base import KeyPrincipal, ManageView, OrgView, actor_of, validated


class InvitationList(OrgView):
    actions = {"GET": "invite_members", "POST": "invite_members"}

    @extend_schema(responses=serializers.InvitationSerializer(many=True), summary="List invitations")
    def get(self, request, slug):
        invitations = selectors.invitations_of(organization=request.organization)
        return Response(serializers.InvitationSerializer(invitations, many=True).data)

    @extend_schema(
        request=serializers.InvitationCreateSerializer,
        responses={201: serializers.InvitationSerializer},
        summary="Invite someone by email",
    )
    def post(self, request, slug):
        data = validated(serializers.InvitationCreateSerializer, request.data)
        invitation, _ = services.invitation_create(
            organization=request.organization,
            email=data["email"],
            role=data["role"],
            actor_role=request.role,
            actor=actor_of(request),
            accept_url_base=request.build_absolute_uri("/"),
        )
        return Response(serializers.InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetail(OrgView):
    actions = {"DELETE": "invite_members"}

    @extend_schema(responses={204: None}, summary="Revoke an invitation")
    def delete(self, request, slug, invitation_id):
        invitation = get_object_or_404(selectors.invitations_of(organization=request.organization), pk=invitation_id)
        services.invitation_revoke(invitation=invitation, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationByToken(ManageView):
    """The email's links: GET shows the invitation, POST accepts (or declines) it as the signed-in user."""

    decline = False

    @extend_schema(responses=serializers.InvitationPreviewSerializer, summary="See an invitation")
    def get(self, request, token):
        return Response(serializers.InvitationPreviewSerializer(services.invitation_by_token(token)).data)

    @extend_schema(
        request=None, responses=serializers.InvitationPreviewSerializer, summary="Accept (or decline) an invitation"
    )
    def post(self, request, token):
        if isinstance(request.user, KeyPrincipal):
            raise exceptions.PermissionDenied("An invitation is answered by a signed-in user, not a key.")
        if self.decline:
            invitation = services.invitation_decline(token=token, actor=actor_of(request))
        else:
            services.invitation_accept(token=token, user=request.user, actor=actor_of(request))
            invitation = services.invitation_by_token(token)
        return Response(serializers.InvitationPreviewSerializer(invitation).data)
