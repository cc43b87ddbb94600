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

        from probes import deadletter

        def notification_secrets() -> list[str]:
            # Channel URLs (Apprise URLs hold tokens) and signing secrets: hidden from dead letters.
            from notifications.models import Channel, Subscriber

            found = [value for row in Channel.objects.values_list("url", "secret") for value in row if value]
            return found + [secret for secret in Subscriber.objects.values_list("secret", flat=True) if secret]

        if not any(getattr(source, "__name__", "") == "notification_secrets" for source in deadletter.SECRET_SOURCES):
            deadletter.SECRET_SOURCES.append(notification_secrets)

        from detection import heartbeat

        def deliveries_retry(now) -> None:
            # While the scheduler is silent, its watchdog loop retries due notifications itself.
            for delivery_id in domain.deliveries_due(now=now):
                domain.delivery_send(delivery_id=delivery_id)

        if not any(getattr(duty, "__name__", "") == "deliveries_retry" for duty in heartbeat.SILENT_DUTIES):
            heartbeat.SILENT_DUTIES.append(deliveries_retry)

        def acknowledgements_check(now) -> None:
            # While the scheduler is silent, its watchdog loop checks acknowledgements itself.
            from notifications.acknowledgements import acknowledgements_notify

            acknowledgements_notify(now=now)

        if not any(getattr(duty, "__name__", "") == "acknowledgements_check" for duty in heartbeat.SILENT_DUTIES):
            heartbeat.SILENT_DUTIES.append(acknowledgements_check)
