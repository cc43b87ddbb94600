"""URL map: the public pages (English at /, French at /fr/), the documents for machines (Statuspage
v2 JSON, feeds, badges), and the admin."""
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from statuspage import api, badges, feeds, reports, views
from oncall import metrics
from statuspage.cache import cached

urlpatterns = [
    path("api/v2/summary.json", api.summary_json, name="summary-json"),
    path("api/v2/status.json", api.status_json, name="status-json"),
    path("api/v2/components.json", api.components_json, name="components-json"),
    path("api/v2/incidents.json", api.incidents_json, name="incidents-json"),
    path("api/v2/incidents/unresolved.json", api.incidents_unresolved_json, name="incidents-unresolved-json"),
    path("api/v2/scheduled-maintenances.json", api.maintenances_json, name="maintenances-json"),
    path("api/v2/scheduled-maintenances/upcoming.json", api.maintenances_upcoming_json,
         name="maintenances-upcoming-json"),
    path("api/v2/scheduled-maintenances/active.json", api.maintenances_active_json,
         name="maintenances-active-json"),
    path("history.rss", cached(feeds.HistoryRSS()), name="history-rss"),
    path("history.atom", cached(feeds.HistoryAtom()), name="history-atom"),
    path("history.json", cached(feeds.history_json), name="history-json"),
    path("badges/status.svg", badges.page_status, name="badge-status"),
    path("badges/uptime.svg", badges.page_uptime, name="badge-uptime"),
    path("components/<str:public_id>/status.svg", badges.component_status, name="component-badge-status"),
    path("components/<str:public_id>/uptime.svg", badges.component_uptime, name="component-badge-uptime"),
    path("metrics", metrics.view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("oncall.management_api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from drf-spectacular-sidecar's files; its start-up script is a separate request
    # (?script), so the page keeps the no-inline-script policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", title="Vigie management API"),
         name="api-docs"),
    path("oncall/", include("oncall.urls")),
    path("subscribe/", include("notifications.urls")),
]

urlpatterns += i18n_patterns(
    path("", views.index, name="index"),
    path("incidents/<str:public_id>", views.incident_page, name="incident"),
    path("components/<str:public_id>", views.component_page, name="component"),
    path("history", views.history, name="history"),
    re_path(r"^history/(?P<month>\d{4}-\d{2})$", views.history_month, name="history-month"),
    re_path(r"^reports/(?P<public>[a-z0-9]{12})$", reports.report_latest, name="report-latest"),
    re_path(r"^reports/(?P<public>[a-z0-9]{12})/(?P<month>\d{4}-\d{2})$", reports.report_page, name="report"),
    re_path(r"^reports/(?P<public>[a-z0-9]{12})/(?P<month>\d{4}-\d{2})\.csv$", reports.report_csv,
            name="report-csv"),
    prefix_default_language=False,
)

# Errors as Vigie pages, in the reader's language, with the link to the status (templates/404.html, 500.html).
handler404 = "statuspage.views.not_found"
handler500 = "statuspage.views.server_error"
