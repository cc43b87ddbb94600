"""URL map of the public site, the admin and the JSON API."""
from django.contrib import admin
from django.urls import path

from statuspage import views

urlpatterns = [
    path("", views.index, name="index"),
    path("incidents/<str:public_id>", views.incident_page, name="incident"),
    path("api/v2/summary.json", views.summary_json, name="summary-json"),
    path("api/v2/status.json", views.status_json, name="status-json"),
    path("api/v2/components.json", views.components_json, name="components-json"),
    path("api/v2/incidents.json", views.incidents_json, name="incidents-json"),
    path("api/v2/incidents/unresolved.json", views.incidents_unresolved_json, name="incidents-unresolved-json"),
    path("api/v2/scheduled-maintenances.json", views.maintenances_json, name="maintenances-json"),
    path("api/v2/scheduled-maintenances/upcoming.json", views.maintenances_upcoming_json,
         name="maintenances-upcoming-json"),
    path("api/v2/scheduled-maintenances/active.json", views.maintenances_active_json,
         name="maintenances-active-json"),
    path("admin/", admin.site.urls),
]
