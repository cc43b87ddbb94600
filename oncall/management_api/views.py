"""The management API's resources: thin views over the serializers and the domain functions."""
from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from detection import evaluation, incidents
from detection.incidents import incident_set_status
from detection.models import Component, ComponentGroup, Incident, IncidentUpdate, Maintenance
from probes.models import Platform, Probe, Run
from oncall.management_api import actions
from oncall.management_api.filters import RunFilter
from oncall.management_api.serializers import (
    ComponentGroupSerializer, ComponentSerializer, IncidentSerializer, IncidentUpdateSerializer,
    MaintenanceSerializer, PlatformSerializer, ProbeSerializer, RunSerializer,
)

PUBLIC_ID = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Public id (12 characters).")
# Objects with a public id are found by it; probes and platforms by slug, runs by key.
PUBLIC_ID_REGEX = r"[a-z0-9]{1,12}"
SLUG_REGEX = r"[a-z0-9][a-z0-9_-]{0,63}"


class PublicIdMixin:
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = PUBLIC_ID_REGEX


def _with_id(viewset):
    """Describe the `{id}` path parameter of a viewset's detail routes."""
    detail = {name: extend_schema(parameters=[PUBLIC_ID])
              for name in ("retrieve", "update", "partial_update", "destroy") if hasattr(viewset, name)}
    return extend_schema_view(**detail)(viewset)


@_with_id
class ComponentGroupViewSet(PublicIdMixin, viewsets.ModelViewSet):
    """Groups of components ("Writes"), in page order."""

    queryset = ComponentGroup.objects.all()
    serializer_class = ComponentGroupSerializer


@_with_id
class ComponentViewSet(PublicIdMixin, viewsets.ModelViewSet):
    """Components as the public sees them; their status comes from their probes."""

    queryset = Component.objects.select_related("group").prefetch_related("probes")
    serializer_class = ComponentSerializer


@_with_id
class IncidentViewSet(PublicIdMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Incidents, newest first. Incidents are history: they are resolved, never deleted."""

    queryset = Incident.objects.select_related("platform").prefetch_related("components", "updates")
    serializer_class = IncidentSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = incidents.incident_open_manual(
            title=data["title"], body=data["body"], status=data.get("status", "investigating"),
            components=data.get("components", []), impact_override=data.get("impact_override", ""),
            started_at=data.get("started_at"))

    def perform_update(self, serializer):
        serializer.instance = incidents.incident_edit(incident=serializer.instance,
                                                      fields=dict(serializer.validated_data))


INCIDENT_ID = OpenApiParameter("incident_id", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="Public id of the incident.")


@extend_schema_view(
    list=extend_schema(parameters=[INCIDENT_ID]),
    create=extend_schema(parameters=[INCIDENT_ID]),
    retrieve=extend_schema(parameters=[INCIDENT_ID, PUBLIC_ID]),
)
class IncidentUpdateViewSet(PublicIdMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            viewsets.GenericViewSet):
    """An incident's timeline. Posting an update moves the incident's status (`resolved` resolves it)."""

    serializer_class = IncidentUpdateSerializer

    def incident(self) -> Incident:
        if not hasattr(self, "_incident"):
            self._incident = get_object_or_404(Incident, public_id=self.kwargs["incident_id"])
        return self._incident

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return IncidentUpdate.objects.none()
        return self.incident().updates.all()

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["incident"] = self.incident()
        return context

    def perform_create(self, serializer):
        with transaction.atomic():
            incident = Incident.objects.select_for_update().get(id=self.incident().id)
            serializer.instance = incident_set_status(incident=incident, status=serializer.validated_data["status"],
                                                      body=serializer.validated_data["body"])


@_with_id
class MaintenanceViewSet(PublicIdMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Planned windows. Cancel one with `cancelled: true`; they are history, never deleted."""

    queryset = Maintenance.objects.prefetch_related("components")
    serializer_class = MaintenanceSerializer

    def perform_create(self, serializer):
        with transaction.atomic():
            maintenance = serializer.save()
        evaluation.maintenance_refresh(maintenance=maintenance)

    def perform_update(self, serializer):
        # Components taken out of the window need their status back too.
        before = list(serializer.instance.components.all())
        with transaction.atomic():
            maintenance = serializer.save()
        evaluation.maintenance_refresh(maintenance=maintenance, also=before)


class ProbeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Probes by slug. Stop one with `enabled: false`: deleting would erase its runs."""

    queryset = Probe.objects.select_related("platform").prefetch_related("locations").order_by("slug")
    serializer_class = ProbeSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_REGEX

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer)

    @staticmethod
    def _save(serializer):
        locations = serializer.validated_data.pop("locations", None)
        with transaction.atomic():
            probe = serializer.save()
            if locations is not None:
                actions.probe_set_locations(probe=probe, locations=locations)


class PlatformViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Platforms by slug, with their test accounts; an account's token is write-only."""

    queryset = Platform.objects.prefetch_related("accounts").order_by("slug")
    serializer_class = PlatformSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_REGEX

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs, newest first, by their key; filter by probe, location, outcome, failure class and time."""

    queryset = Run.objects.select_related("probe", "location").order_by("-started_at", "-id")
    serializer_class = RunSerializer
    lookup_field = "key"
    lookup_value_regex = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter

