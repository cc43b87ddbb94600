from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "detection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from detection import evaluation, heartbeat
        from probes.models import Run
        from probes.spool import runs_stored

        def evaluate(sender, runs, **_) -> None:  # noqa: ARG001
            evaluation.runs_evaluate(runs)  # looked up at each call: tests may patch it

        runs_stored.connect(evaluate, sender=Run, weak=False, dispatch_uid="detection-evaluate-runs")

        def watchdog(now) -> None:
            evaluation.watchdog(now)

        if not any(getattr(duty, "__name__", "") == "watchdog" for duty in heartbeat.SILENT_DUTIES):
            heartbeat.SILENT_DUTIES.insert(0, watchdog)
