"""JSON Schemas of the Statuspage v2 public API, written from shared/reference/statuspage-v2.md."""
from __future__ import annotations

# Milliseconds always; "Z" on a UTC page (2023-02-08T21:10:43.123Z), else the page's offset.
STAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$"
ID = r"^[a-z0-9]{12}$"
COMPONENT_STATUS = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
INCIDENT_STATUS = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
MAINTENANCE_STATUS = ["scheduled", "in_progress", "verifying", "completed"]

stamp = {"type": "string", "pattern": STAMP}
stamp_or_null = {"anyOf": [stamp, {"type": "null"}]}
ident = {"type": "string", "pattern": ID}

PAGE = {"type": "object", "additionalProperties": False,
        "required": ["id", "name", "url", "time_zone", "updated_at"],
        "properties": {"id": ident, "name": {"type": "string"}, "url": {"type": "string", "format": "uri"},
                       "time_zone": {"type": "string"}, "updated_at": stamp}}
STATUS = {"type": "object", "additionalProperties": False, "required": ["indicator", "description"],
          "properties": {"indicator": {"enum": ["none", "minor", "major", "critical", "maintenance"]},
                         "description": {"type": "string"}}}
COMPONENT = {"type": "object", "additionalProperties": False,
             "required": ["id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                          "start_date", "group_id", "page_id", "group", "only_show_if_degraded"],
             "properties": {"id": ident, "name": {"type": "string"}, "status": {"enum": COMPONENT_STATUS},
                            "created_at": stamp, "updated_at": stamp, "position": {"type": "integer", "minimum": 1},
                            "description": {"type": ["string", "null"]}, "showcase": {"type": "boolean"},
                            "start_date": {"anyOf": [{"type": "string", "pattern": r"^\d{4}-\d\d-\d\d$"},
                                                     {"type": "null"}]},
                            "group_id": {"anyOf": [ident, {"type": "null"}]}, "page_id": ident,
                            "group": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"},
                            "components": {"type": "array", "items": ident}},
             # A group lists its members' ids; a component never has the field.
             "if": {"properties": {"group": {"const": True}}},
             "then": {"required": ["components"], "properties": {"group_id": {"type": "null"}}},
             "else": {"not": {"required": ["components"]}}}


def _update(statuses: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False,
            "required": ["id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
                         "affected_components", "deliver_notifications", "custom_tweet", "tweet_id"],
            "properties": {"id": ident, "status": {"enum": statuses}, "body": {"type": "string"},
                           "incident_id": ident, "created_at": stamp, "updated_at": stamp, "display_at": stamp,
                           "affected_components": {"anyOf": [{"type": "null"}, {"type": "array", "items": {
                               "type": "object", "additionalProperties": False,
                               "required": ["code", "name", "old_status", "new_status"],
                               "properties": {"code": ident, "name": {"type": "string"},
                                              "old_status": {"enum": COMPONENT_STATUS},
                                              "new_status": {"enum": COMPONENT_STATUS}}}}]},
                           "deliver_notifications": {"type": "boolean"}, "custom_tweet": {"type": "null"},
                           "tweet_id": {"type": "null"}}}


# Vigie's own extras, documented in docs/statuspage-v2.md: optional fields consumers ignore.
ACKNOWLEDGEMENT = {"type": "object", "additionalProperties": False,
                   "required": ["platform", "acknowledged", "acknowledged_at", "time_to_acknowledge_s",
                                "official_incident", "official_resolved_at"],
                   "properties": {"platform": {"type": "string"}, "acknowledged": {"type": "boolean"},
                                  "acknowledged_at": stamp_or_null,
                                  "time_to_acknowledge_s": {"type": ["number", "null"]},
                                  "official_incident": {"anyOf": [{"type": "null"}, {
                                      "type": "object", "additionalProperties": False, "required": ["name", "url"],
                                      "properties": {"name": {"type": "string"},
                                                     "url": {"anyOf": [{"type": "null"}, {
                                                         "type": "string", "pattern": "^https?://"}]}}}]},
                                  "official_resolved_at": stamp_or_null}}
DECLARED = {"type": "array", "items": {
    "type": "object", "additionalProperties": False, "required": ["platform", "indicator", "since", "description", "url"],
    "properties": {"platform": {"type": "string"},
                   "indicator": {"enum": ["none", "minor", "major", "critical", "maintenance", "unreachable", "unknown"]},
                   "since": stamp_or_null, "description": {"type": "string"},
                   "url": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^https?://"}]}}}}


def _incident(statuses: list[str], impacts: list[str], extra: dict | None = None,
              optional: dict | None = None) -> dict:
    properties = {
        "id": ident, "name": {"type": "string"}, "status": {"enum": statuses}, "created_at": stamp,
        "updated_at": stamp, "monitoring_at": stamp_or_null, "resolved_at": stamp_or_null,
        "impact": {"enum": impacts}, "shortlink": {"type": "string"}, "started_at": stamp, "page_id": ident,
        "incident_updates": {"type": "array", "items": _update(statuses)},
        "components": {"type": "array", "items": COMPONENT},
        "postmortem_body": {"type": ["string", "null"]}, "postmortem_published_at": stamp_or_null,
        **(extra or {}),
    }
    return {"type": "object", "additionalProperties": False, "required": sorted(properties),
            "properties": {**properties, **(optional or {})}}


INCIDENT = _incident(INCIDENT_STATUS, ["none", "minor", "major", "critical"],
                     optional={"vigie_acknowledgement": ACKNOWLEDGEMENT})
MAINTENANCE = _incident(MAINTENANCE_STATUS, ["maintenance"], {"scheduled_for": stamp, "scheduled_until": stamp})


def document(optional: dict | None = None, **parts: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["page", *parts],
            "properties": {"page": PAGE, **parts, **(optional or {})}}


DOCUMENTS = {
    "/api/v2/status.json": document(status=STATUS, optional={"vigie_declared": DECLARED}),
    "/api/v2/components.json": document(components={"type": "array", "items": COMPONENT}),
    "/api/v2/summary.json": document(components={"type": "array", "items": COMPONENT},
                                     incidents={"type": "array", "items": INCIDENT},
                                     scheduled_maintenances={"type": "array", "items": MAINTENANCE}, status=STATUS,
                                     optional={"vigie_declared": DECLARED}),
    "/api/v2/incidents.json": document(incidents={"type": "array", "items": INCIDENT}),
    "/api/v2/incidents/unresolved.json": document(incidents={"type": "array", "items": INCIDENT}),
    "/api/v2/scheduled-maintenances.json": document(scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
    "/api/v2/scheduled-maintenances/upcoming.json": document(
        scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
    "/api/v2/scheduled-maintenances/active.json": document(
        scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
}
