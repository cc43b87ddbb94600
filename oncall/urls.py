"""URLs of the on-call dashboard, mounted at /oncall/ (outside the language prefixes)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from oncall import views

app_name = "oncall"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(template_name="oncall/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="oncall:login"), name="logout"),
    path("fragments/<str:name>", views.fragment, name="fragment"),
    path("oncall.js", views.script, name="script"),
    path("incidents/<str:public_id>/update", views.incident_update, name="incident-update"),
    path("incidents/<str:public_id>/resolve", views.incident_resolve, name="incident-resolve"),
    path("incidents/<str:public_id>/impact", views.incident_impact, name="incident-impact"),
    path("incidents/<str:public_id>/postmortem", views.incident_postmortem, name="incident-postmortem"),
    path("maintenances", views.maintenance_create, name="maintenance-create"),
    path("dead-letters/<int:letter_id>/retry", views.dead_letter_retry, name="dead-letter-retry"),
    path("dead-letters/<int:letter_id>/discard", views.dead_letter_discard, name="dead-letter-discard"),
]
