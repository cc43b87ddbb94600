"""The public site: connects its cache to the changes it shows."""
from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save


class StatuspageConfig(AppConfig):
    name = "statuspage"

    def ready(self) -> None:
        from detection import models
        from detection.events import public_change, public_changed
        from probes.tasks import dispatch_pass_done
        from statuspage.cache import public_changed as invalidate
        from statuspage.cache import static_copy_freshen
        from statuspage.sanitize import clean_instance_texts
        from statuspage.i18n import lowercase_french_months

        lowercase_french_months()

        public_changed.connect(invalidate, dispatch_uid="statuspage-cache")
        # The static copy's "last checked" follows the live page's, pass by pass.
        dispatch_pass_done.connect(lambda **_kwargs: static_copy_freshen(), weak=False,
                                   dispatch_uid="statuspage-static-copy-freshen")

        # Edits made outside the domain functions (the admin, config) count too.
        def edited(**_kwargs):
            public_change()

        for model in (models.Component, models.ComponentGroup, models.Incident, models.IncidentUpdate,
                      models.IncidentComponent, models.Maintenance):
            post_save.connect(edited, sender=model, weak=False, dispatch_uid=f"public-save-{model.__name__}")
            post_delete.connect(edited, sender=model, weak=False, dispatch_uid=f"public-delete-{model.__name__}")
        # Texts are stored without the characters XML forbids, whichever door they come through.
        for model in (models.Incident, models.IncidentUpdate, models.Maintenance):
            pre_save.connect(clean_instance_texts, sender=model, dispatch_uid=f"clean-texts-{model.__name__}")
        m2m_changed.connect(edited, sender=models.Maintenance.components.through, weak=False,
                            dispatch_uid="public-m2m-maintenance")

        # What the platforms declare shows on the pages too (official/): each row the fetcher or
        # the matcher saves is a change. A source's poll bookkeeping alone is not (it would
        # render the site again at every poll).
        from official import models as official

        bookkeeping = frozenset({"next_poll_at", "last_polled_at", "last_ok_at", "last_error"})

        def source_edited(update_fields=None, **_kwargs):
            if update_fields is None or not set(update_fields) <= bookkeeping:
                public_change()

        post_save.connect(source_edited, sender=official.OfficialSource, weak=False,
                          dispatch_uid="public-save-OfficialSource")
        post_delete.connect(edited, sender=official.OfficialSource, weak=False,
                            dispatch_uid="public-delete-OfficialSource")
        for model in (official.OfficialIncident, official.OfficialStateChange, official.IncidentAcknowledgement):
            post_save.connect(edited, sender=model, weak=False, dispatch_uid=f"public-save-{model.__name__}")
            post_delete.connect(edited, sender=model, weak=False, dispatch_uid=f"public-delete-{model.__name__}")
