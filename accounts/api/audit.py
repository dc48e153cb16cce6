"""An organisation's audit log."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics

from .. import selectors, serializers
from .base import OrgView, Pages


class AuditLog(OrgView, generics.ListAPIView):
    actions = {"GET": "view_audit_log"}
    serializer_class = serializers.AuditEventSerializer
    pagination_class = Pages

    def get_queryset(self):
        # OrganizationAccess sets it on the request; DRF's Request has no such attribute to declare.
        return selectors.audit_events_of(organization=self.request.organization)  # type: ignore[attr-defined]

    @extend_schema(summary="Audit log, newest first")
    def get(self, request, slug):
        return self.list(request)
