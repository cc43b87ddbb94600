"""Public subscription pages: subscribe, confirm (double opt-in), unsubscribe."""
from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.subscribe, name="subscribe"),
    path("confirm/<str:token>", views.confirm, name="confirm"),
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
]
