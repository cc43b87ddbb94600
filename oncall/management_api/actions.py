"""The changes the management API makes that have no domain function in `probes` yet; each is one
function the views call, so the admin or the dashboard can call the same one later."""
from __future__ import annotations


from django.utils import timezone

from probes.models import (
    Account, Location, Platform, Probe,
    ProbeLocation, staggered_start,
)


def probe_set_locations(*, probe: Probe, locations: list[Location]) -> None:
    """Place the probe at exactly these locations; a new placement is due at its location's phase
    of the interval (probes.models.staggered_start)."""
    wanted = {location.id for location in locations}
    ProbeLocation.objects.filter(probe=probe).exclude(location_id__in=wanted).delete()
    for location_id in wanted:
        ProbeLocation.objects.get_or_create(probe=probe, location_id=location_id,
                                            defaults={"next_run_at": staggered_start(location_id, probe.interval_s)})


def platform_set_accounts(*, platform: Platform, accounts: list[dict]) -> None:
    """Create or update the platform's accounts by role; a missing token keeps the stored one."""
    for item in accounts:
        account = Account.objects.filter(platform=platform, role=item["role"]).first()
        if account is None:
            Account.objects.create(platform=platform, role=item["role"], username=item["username"],
                                   token=item["token"])
            continue
        fields = []
        if item.get("username"):
            account.username = item["username"]
            fields.append("username")
        if item.get("token"):
            account.token = item["token"]
            fields.append("token")
        if fields:
            account.save(update_fields=fields)
