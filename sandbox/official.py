"""The sandbox platform's own official status page: Statuspage v2 JSON and an Atom feed, as a real
platform's page would be, with what it declares steered from the control endpoint.

By default the page acknowledges trouble like a platform that watches itself: while faults are
active, it declares one incident `ack_after_s` seconds after the first of them started (60 s unless
set; `never` keeps it silent, the February 2023 way), naming the components of the faulted actions,
and resolves it once no fault is left. A fault may carry its own `official_ack_s` (a scenario's "the
platform acknowledges after 5 minutes"). The control can also declare an incident that probes cannot
see, resolve one, clear them all, or make the page itself answer badly (`answer`: error, html,
slow:<ms>, garbage) so Vigie's reader meets an unreachable source.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

from .common import iso_ms

DEFAULT_ACK_AFTER_S = 60.0
# The demo platform's components, named as the demo configuration names Vigie's (so they map by name).
COMPONENTS = ("Posting", "Reposting", "Following", "Direct messages", "Timeline")
ACTION_COMPONENTS = {"post": ("Posting",), "repost": ("Reposting",), "follow": ("Following",),
                     "dm": ("Direct messages",), "read": ("Timeline",), "*": COMPONENTS}
IMPACT_STATUS = {"minor": "degraded_performance", "major": "partial_outage", "critical": "major_outage"}
IMPACTS = ("none", "minor", "major", "critical")
ANSWERS = ("ok", "error", "html", "garbage")  # and slow:<ms>
ANSWER_RE = re.compile(r"^(ok|error|html|garbage|slow:[0-9]{1,6})$")
PAGE_ID = "vigiesandbox"


@dataclass
class OfficialIncident:
    id: str
    name: str
    impact: str
    components: list[str]
    created_at: datetime
    updates: list[dict[str, Any]] = field(default_factory=list)  # newest first
    resolved_at: datetime | None = None
    fault_ids: set[str] = field(default_factory=set)  # automatic: the faults it stands for

    @property
    def status(self) -> str:
        return self.updates[0]["status"] if self.updates else "investigating"

    @property
    def updated_at(self) -> datetime:
        return self.updates[0]["created_at"] if self.updates else self.created_at


class OfficialPage:
    """What the page declares. The caller (SandboxState) holds the lock."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ack_after_s: float | None = DEFAULT_ACK_AFTER_S
        self.answer = "ok"
        self.incidents: list[OfficialIncident] = []
        self.updated_at: datetime | None = None

    # -- steering ------------------------------------------------------------------------------------

    def settings(self, data: dict[str, Any]) -> None:
        if "ack_after_s" in data:
            value = data["ack_after_s"]
            if value in (None, "never"):
                self.ack_after_s = None
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 30 * 86400:
                self.ack_after_s = float(value)
            else:
                raise ValueError("ack_after_s: a number of seconds (0 to 30 days) or \"never\"")
        if "answer" in data:
            if not isinstance(data["answer"], str) or not ANSWER_RE.match(data["answer"]):
                raise ValueError("answer: one of ok, error, html, garbage, slow:<ms>")
            self.answer = data["answer"]

    def declare(self, now: datetime, name: str, components: list[str], impact: str = "major",
                body: str = "We are investigating reports of problems.") -> OfficialIncident:
        if impact not in IMPACTS:
            raise ValueError(f"impact: one of {', '.join(IMPACTS)}")
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"components: {', '.join(unknown)} not on this page; it has {', '.join(COMPONENTS)}")
        incident = OfficialIncident(secrets.token_hex(6), name[:200], impact, list(dict.fromkeys(components)), now)
        incident.updates.insert(0, _update(incident, "investigating", body, now))
        self.incidents.insert(0, incident)
        self.updated_at = now
        return incident

    def resolve(self, now: datetime, incident_id: str | None = None) -> int:
        count = 0
        for incident in self.incidents:
            if incident.resolved_at is None and incident_id in (None, incident.id):
                incident.resolved_at = now
                incident.updates.insert(0, _update(incident, "resolved", "This incident has been resolved.", now))
                count += 1
        self.updated_at = now if count else self.updated_at
        return count

    def clear(self) -> None:
        self.incidents.clear()

    # -- following the faults ------------------------------------------------------------------------

    def follow_faults(self, now: datetime, faults: list) -> None:
        """Declare what the faults would make a watchful platform declare, by now (see the docstring)."""
        live = {f.id: f for f in faults}
        automatic = [i for i in self.incidents if i.fault_ids and i.resolved_at is None]
        for incident in automatic:
            if not incident.fault_ids & set(live):
                incident.resolved_at = now
                incident.updates.insert(0, _update(incident, "resolved", "This incident has been resolved.", now))
                self.updated_at = now
        covered = {fid for i in self.incidents if i.resolved_at is None for fid in i.fault_ids}
        due = []
        for fault in live.values():
            delay = fault.official_ack_s if fault.official_ack_s is not None else self.ack_after_s
            if fault.id in covered or delay is None or delay == "never":
                continue
            if fault.created_at + timedelta(seconds=float(delay)) <= now:
                due.append((fault.created_at + timedelta(seconds=float(delay)), fault))
        if not due:
            return
        declared_at = min(at for at, _ in due)
        components = [c for _, f in due for c in ACTION_COMPONENTS.get(f.action, ())]
        open_auto = next((i for i in self.incidents if i.fault_ids and i.resolved_at is None), None)
        if open_auto is None:
            open_auto = self.declare(declared_at, "Some actions are failing for some users", components,
                                     body="We are investigating reports that posting and other actions fail.")
        else:
            open_auto.components = list(dict.fromkeys(open_auto.components + components))
        open_auto.fault_ids |= {f.id for _, f in due}

    # -- the documents ------------------------------------------------------------------------------

    def _page(self, base_url: str, now: datetime) -> dict[str, Any]:
        return {"id": PAGE_ID, "name": "Sandbox platform", "url": base_url, "time_zone": "Etc/UTC",
                "updated_at": iso_ms(self.updated_at or now)}

    def _open(self) -> list[OfficialIncident]:
        return [i for i in self.incidents if i.resolved_at is None]

    def component_statuses(self) -> dict[str, str]:
        statuses = {name: "operational" for name in COMPONENTS}
        order = ("operational", "degraded_performance", "partial_outage", "major_outage")
        for incident in self._open():
            status = IMPACT_STATUS.get(incident.impact, "operational")
            for name in incident.components:
                if order.index(status) > order.index(statuses[name]):
                    statuses[name] = status
        return statuses

    def status(self, base_url: str, now: datetime) -> dict[str, Any]:
        impacts = [i.impact for i in self._open()]
        indicator = max(impacts, key=IMPACTS.index, default="none")
        description = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                       "major": "Partial System Outage", "critical": "Major System Outage"}[indicator]
        return {"page": self._page(base_url, now), "status": {"indicator": indicator, "description": description}}

    def components(self, base_url: str, now: datetime) -> dict[str, Any]:
        statuses = self.component_statuses()
        return {"page": self._page(base_url, now), "components": [
            {"id": f"c{position:011d}", "name": name, "status": statuses[name], "created_at": "2023-02-01T00:00:00.000Z",
             "updated_at": iso_ms(self.updated_at or now), "position": position, "description": None,
             "showcase": True, "start_date": None, "group_id": None, "page_id": PAGE_ID, "group": False,
             "only_show_if_degraded": False}
            for position, name in enumerate(COMPONENTS, start=1)]}

    def incident_json(self, incident: OfficialIncident, base_url: str) -> dict[str, Any]:
        statuses = self.component_statuses()
        return {
            "id": incident.id, "name": incident.name, "status": incident.status, "impact": incident.impact,
            "created_at": iso_ms(incident.created_at), "updated_at": iso_ms(incident.updated_at),
            "monitoring_at": None, "resolved_at": iso_ms(incident.resolved_at) if incident.resolved_at else None,
            "started_at": iso_ms(incident.created_at), "shortlink": f"{base_url}/incidents/{incident.id}",
            "page_id": PAGE_ID,
            "incident_updates": [{
                "id": u["id"], "status": u["status"], "body": u["body"], "incident_id": incident.id,
                "created_at": iso_ms(u["created_at"]), "updated_at": iso_ms(u["created_at"]),
                "display_at": iso_ms(u["created_at"]), "affected_components": None,
                "deliver_notifications": True, "custom_tweet": None, "tweet_id": None} for u in incident.updates],
            "components": [{"id": f"c{COMPONENTS.index(n) + 1:011d}", "name": n, "status": statuses[n],
                            "group": False, "group_id": None, "page_id": PAGE_ID} for n in incident.components],
        }

    def incidents_json(self, base_url: str, now: datetime, *, unresolved: bool) -> dict[str, Any]:
        chosen = self._open() if unresolved else self.incidents[:50]
        return {"page": self._page(base_url, now), "incidents": [self.incident_json(i, base_url) for i in chosen]}

    def summary(self, base_url: str, now: datetime) -> dict[str, Any]:
        return {**self.status(base_url, now), "components": self.components(base_url, now)["components"],
                "incidents": self.incidents_json(base_url, now, unresolved=True)["incidents"],
                "scheduled_maintenances": []}

    def atom(self, base_url: str, now: datetime) -> str:
        """The history feed, shaped like Statuspage's /history.atom."""
        entries = []
        for incident in self.incidents[:50]:
            content = "".join(
                f"<p><small>{u['created_at']:%b %d, %H:%M} UTC</small><br><strong>"
                f"{u['status'].replace('_', ' ').capitalize()}</strong> - {escape(u['body'])}</p>"
                for u in incident.updates)
            entries.append(
                f"<entry><id>tag:sandbox,2005:Incident/{incident.id}</id>"
                f"<published>{iso_ms(incident.created_at)}</published><updated>{iso_ms(incident.updated_at)}</updated>"
                f"<link rel=\"alternate\" type=\"text/html\" href=\"{escape(base_url)}/incidents/{incident.id}\"/>"
                f"<title>{escape(incident.name)}</title><content type=\"html\">{escape(content)}</content></entry>")
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                "<feed xml:lang=\"en-US\" xmlns=\"http://www.w3.org/2005/Atom\">"
                f"<id>tag:sandbox,2005:/history</id><link rel=\"alternate\" type=\"text/html\" href=\"{escape(base_url)}\"/>"
                f"<title>Sandbox platform - Incident History</title><updated>{iso_ms(self.updated_at or now)}</updated>"
                f"<author><name>Sandbox platform</name></author>{''.join(entries)}</feed>")

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {"ack_after_s": self.ack_after_s if self.ack_after_s is not None else "never", "answer": self.answer,
                "incidents": [self.incident_json(i, base_url) for i in self.incidents]}


def _update(incident: OfficialIncident, status: str, body: str, now: datetime) -> dict[str, Any]:
    return {"id": secrets.token_hex(6), "status": status, "body": body, "created_at": now}
