from django.apps import AppConfig


class OfficialConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "official"
    verbose_name = "Official status (declared by the platforms)"
