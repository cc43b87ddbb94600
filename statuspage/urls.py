"""URL map of the public site, the admin and the JSON API."""
from django.contrib import admin
from django.urls import path

from statuspage import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/v2/components.json", views.components_json, name="components-json"),
    path("admin/", admin.site.urls),
]
