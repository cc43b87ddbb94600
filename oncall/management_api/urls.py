"""URLs of the management API, under /api/v1/."""
from rest_framework.routers import DefaultRouter

from oncall.management_api import views

router = DefaultRouter()
router.register("component-groups", views.ComponentGroupViewSet, basename="api-component-group")
router.register("components", views.ComponentViewSet, basename="api-component")
router.register("incidents", views.IncidentViewSet, basename="api-incident")
router.register(r"incidents/(?P<incident_id>[a-z0-9]{1,12})/updates", views.IncidentUpdateViewSet,
                basename="api-incident-update")
router.register("maintenances", views.MaintenanceViewSet, basename="api-maintenance")
router.register("probes", views.ProbeViewSet, basename="api-probe")
router.register("platforms", views.PlatformViewSet, basename="api-platform")
router.register("runs", views.RunViewSet, basename="api-run")

urlpatterns = router.urls
