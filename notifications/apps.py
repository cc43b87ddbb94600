"""On-call notifications and public subscribers: events, channels, deliveries."""
import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifications import domain
        from detection.events import incident_updated, maintenance_boundary, problem_changed

        def guarded(make):
            # A notification that cannot be made must not fail the evaluation that announced it.
            def receiver(sender, signal, **ids):  # noqa: ARG001
                try:
                    make(**ids)
                except Exception:
                    log.exception("notification event not made for %s", ids)
            return receiver

        incident_updated.connect(guarded(domain.incident_update_notify), weak=False, dispatch_uid="notify-incident")
        maintenance_boundary.connect(guarded(domain.maintenance_notify), weak=False,
                                     dispatch_uid="notify-maintenance")
        problem_changed.connect(guarded(domain.problem_notify), weak=False, dispatch_uid="notify-problem")
