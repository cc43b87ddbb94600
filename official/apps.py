from django.apps import AppConfig


class OfficialConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "official"
    verbose_name = "Official status (declared by the platforms)"

    def ready(self) -> None:
        from detection.events import incident_updated

        incident_updated.connect(_incident_updated, dispatch_uid="official.acknowledgement")


def _incident_updated(sender, update_id: int, **kwargs) -> None:
    """A Vigie incident opened or changed (detection announces it after commit): its
    acknowledgement row is created or brought up to date."""
    from detection.models import IncidentUpdate
    from official.acknowledgement import acknowledgement_refresh

    incident_id = IncidentUpdate.objects.filter(id=update_id).values_list("incident_id", flat=True).first()
    if incident_id is not None:
        acknowledgement_refresh(incident_id=incident_id)
