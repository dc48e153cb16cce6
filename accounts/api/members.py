"""An organisation's members: their roles, removal, and leaving."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import selectors, serializers, services
from .base import KeyPrincipal, OrgView, actor_of, validated


class MemberList(OrgView):
    actions = {"GET": "view_members"}

    @extend_schema(responses=serializers.MemberSerializer(many=True), summary="List members")
    def get(self, request, slug):
        members = selectors.members_of(organization=request.organization)
        return Response(serializers.MemberSerializer(members, many=True).data)


class MemberDetail(OrgView):
    actions = {"PATCH": "change_roles", "DELETE": "remove_members"}

    def _membership(self, request, member_id):
        return get_object_or_404(selectors.members_of(organization=request.organization), pk=member_id)

    @extend_schema(
        request=serializers.RoleSerializer, responses=serializers.MemberSerializer, summary="Change a member's role"
    )
    def patch(self, request, slug, member_id):
        membership = self._membership(request, member_id)
        data = validated(serializers.RoleSerializer, request.data)
        services.membership_change_role(
            membership=membership, role=data["role"], actor_role=request.role, actor=actor_of(request)
        )
        return Response(serializers.MemberSerializer(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member")
    def delete(self, request, slug, member_id):
        membership = self._membership(request, member_id)
        services.membership_remove(membership=membership, actor_role=request.role, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class Leave(OrgView):
    @extend_schema(request=None, responses={204: None}, summary="Leave the organisation")
    def post(self, request, slug):
        if isinstance(request.user, KeyPrincipal):
            raise exceptions.PermissionDenied("A key is not a member: it cannot leave.")
        membership = get_object_or_404(selectors.members_of(organization=request.organization), user=request.user)
        services.membership_leave(membership=membership, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
