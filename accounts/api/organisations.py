"""The caller's organisations, with its role in each."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from .. import permissions, selectors, serializers
from .base import KeyPrincipal, ManageView


class OrganizationList(ManageView):
    @extend_schema(responses=serializers.OrganizationSerializer(many=True), summary="Your organisations")
    def get(self, request):
        if isinstance(request.user, KeyPrincipal):
            roles = [(request.user.api_key.organization, permissions.KEY_ROLE)]
        else:
            roles = [(m.organization, m.role) for m in selectors.memberships_of_user(user=request.user)]
        # The caller's role goes beside each organisation, not onto the model instance.
        rows = [{"slug": org.slug, "name": org.name, "role": role} for org, role in roles]
        return Response(serializers.OrganizationSerializer(rows, many=True).data)
