"""What the management API reads and writes: objects by their public id or slug, never a secret."""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from platforms.adapters import REGISTRY
from probes.models import Account, Location, Platform, Probe, Run
from detection.models import Component, ComponentGroup, Incident, IncidentStatus, IncidentUpdate, Maintenance

# Upper bounds the models leave open; past them a value is a mistake (and overflows some columns).
MAX_INTERVAL_S = 7 * 24 * 3600
MAX_THRESHOLD = 1000
MAX_LATENCY_MS = 600_000
MAX_POSITION = 1_000_000


class Ref(serializers.SlugRelatedField):
    """An object named by its public id, slug or name; a name no row can have is refused before any
    query (PostgreSQL refuses NUL bytes in text, with an error)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value="(contains a NUL byte)")
        return super().to_internal_value(data)


def _bounded(value, kind: str = "body") -> str:
    """A text within its length limit (VIGIE_MAX_BODY_CHARS / VIGIE_MAX_POSTMORTEM_CHARS), without
    the characters XML forbids; a clear 400 otherwise (statuspage/sanitize.py)."""
    from statuspage.sanitize import check_length

    try:
        return check_length(value, kind)
    except DjangoValidationError as error:
        raise serializers.ValidationError(error.messages) from None


# Times outside these years are typing mistakes, and the page's date arithmetic would overflow on them.
FIRST_YEAR, LAST_YEAR = 2000, 2100


def _plausible(value, name: str):
    if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise serializers.ValidationError({name: f"Give a time between the years {FIRST_YEAR} and {LAST_YEAR}."})
    return value


class ComponentGroupSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = ComponentGroup
        fields = ["id", "name", "description", "position", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"position": {"max_value": MAX_POSITION}}


class ComponentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    group = Ref(slug_field="public_id", queryset=ComponentGroup.objects.all(),
                                         allow_null=True, required=False,
                                         help_text="Public id of the component group.")
    probes = Ref(slug_field="slug", queryset=Probe.objects.all(), many=True, required=False,
                                          help_text="Slugs of the probes that feed this component.")

    class Meta:
        model = Component
        fields = ["id", "name", "description", "position", "group", "probes", "status", "stale",
                  "incident_on_degraded", "created_at", "updated_at"]
        # The status comes from the probes' runs (and maintenance windows), not from a person.
        read_only_fields = ["status", "stale", "created_at", "updated_at"]
        extra_kwargs = {"position": {"max_value": MAX_POSITION}}


class IncidentUpdateSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = IncidentUpdate
        fields = ["id", "status", "body", "automatic", "affected_components", "created_at"]
        read_only_fields = ["automatic", "affected_components", "created_at"]

    def validate_status(self, value: str) -> str:
        incident = self.context.get("incident")
        if incident is not None and incident.resolved_at is not None and value not in (
                IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM):
            raise serializers.ValidationError(
                "The incident is resolved: only 'resolved' or 'postmortem' updates may follow.")
        return value

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The update needs a message.")
        return _bounded(value)


class IncidentSerializer(serializers.ModelSerializer):
    """An incident. Its status moves only by posting an update (`incidents/{id}/updates/`)."""

    id = serializers.CharField(source="public_id", read_only=True)
    platform = Ref(slug_field="slug", read_only=True)
    components = Ref(slug_field="public_id", queryset=Component.objects.all(), many=True,
                                              required=False, help_text="Public ids of the affected components.")
    updates = IncidentUpdateSerializer(many=True, read_only=True)
    body = serializers.CharField(write_only=True, required=False,
                                 help_text="On create: the message of the incident's first update.")

    class Meta:
        model = Incident
        fields = ["id", "title", "status", "impact", "impact_override", "platform", "automatic", "components",
                  "started_at", "detected_at", "monitoring_at", "resolved_at", "started_uncertainty_s",
                  "resolved_uncertainty_s", "postmortem_body", "postmortem_published_at", "created_at",
                  "updated_at", "updates", "body"]
        read_only_fields = ["impact", "automatic", "detected_at", "monitoring_at", "resolved_at",
                            "started_uncertainty_s", "resolved_uncertainty_s", "postmortem_published_at",
                            "created_at", "updated_at"]
        extra_kwargs = {"started_at": {"required": False}, "status": {"required": False}}

    def validate(self, attrs: dict) -> dict:
        _plausible(attrs.get("started_at"), "started_at")
        if self.instance is None:
            if not (attrs.get("body") or "").strip():
                raise serializers.ValidationError({"body": "A new incident needs the message of its first update."})
            if attrs.get("started_at") and attrs["started_at"] > timezone.now():
                raise serializers.ValidationError({"started_at": "An incident cannot start in the future."})
        else:
            # After creation, the status moves by updates and the evidence-based fields stay.
            for name in ("status", "components", "started_at", "body"):
                if name in attrs:
                    raise serializers.ValidationError({name: self._fixed_message(name)})
        return attrs

    @staticmethod
    def _fixed_message(name: str) -> str:
        if name in ("status", "body"):
            return "Post an update to incidents/{id}/updates/ to change the status or say something."
        return "This field is set when the incident is created and cannot be changed."

    def validate_body(self, value: str) -> str:
        return _bounded(value)

    def validate_postmortem_body(self, value: str) -> str:
        return _bounded(value, "postmortem")

    def validate_title(self, value: str) -> str:
        return _bounded(value)


class MaintenanceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    components = Ref(slug_field="public_id", queryset=Component.objects.all(), many=True,
                                              help_text="Public ids of the components under maintenance.")
    status = serializers.SerializerMethodField()

    class Meta:
        model = Maintenance
        fields = ["id", "title", "body", "components", "scheduled_for", "scheduled_until", "cancelled", "status",
                  "created_at"]
        read_only_fields = ["created_at"]

    @extend_schema_field(serializers.ChoiceField(choices=["scheduled", "in_progress", "completed"]))
    def get_status(self, obj: Maintenance) -> str:
        return obj.status_at(timezone.now())

    def validate_body(self, value: str) -> str:
        return _bounded(value)

    def validate_title(self, value: str) -> str:
        return _bounded(value)

    def validate(self, attrs: dict) -> dict:
        for name in ("scheduled_for", "scheduled_until"):
            _plausible(attrs.get(name), name)
        start = attrs.get("scheduled_for", getattr(self.instance, "scheduled_for", None))
        end = attrs.get("scheduled_until", getattr(self.instance, "scheduled_until", None))
        if start and end and end <= start:
            raise serializers.ValidationError({"scheduled_until": "The window must end after it starts "
                                                                  "(scheduled_until after scheduled_for)."})
        return attrs


class ProbeSerializer(serializers.ModelSerializer):
    platform = Ref(slug_field="slug", queryset=Platform.objects.all())
    locations = Ref(slug_field="name", queryset=Location.objects.all(), many=True,
                                             required=False, help_text="Names of the locations it runs from.")

    class Meta:
        model = Probe
        fields = ["slug", "name", "platform", "action", "interval_s", "timeout_s", "latency_threshold_ms",
                  "failure_threshold", "success_threshold", "quorum", "enabled", "locations"]
        extra_kwargs = {
            "interval_s": {"max_value": MAX_INTERVAL_S},
            "latency_threshold_ms": {"max_value": MAX_LATENCY_MS},
            "failure_threshold": {"max_value": MAX_THRESHOLD},
            "success_threshold": {"max_value": MAX_THRESHOLD},
            "quorum": {"max_value": MAX_THRESHOLD},
        }

    SCHEDULE_FIELDS = ("platform", "action", "interval_s", "enabled", "locations")

    def validate(self, attrs: dict) -> dict:
        """The same budget check as `config apply`, with the same words: a schedule that would use
        up the platform's write limits is refused whichever door changes it."""
        from detection.budget import schedule_problems

        if not any(name in attrs for name in self.SCHEDULE_FIELDS):
            return attrs
        probe = self.instance
        value = lambda name, default=None: attrs.get(name, getattr(probe, name) if probe else default)  # noqa: E731
        platform = value("platform")
        if platform is None:
            return attrs
        planned = [{"slug": p.slug, "action": p.action, "interval": p.interval_s,
                    "locations": [loc.name for loc in p.locations.all()]}
                   for p in platform.probes.filter(enabled=True).prefetch_related("locations")
                   if probe is None or p.id != probe.id]
        if value("enabled", True):
            locations = attrs["locations"] if "locations" in attrs else (list(probe.locations.all()) if probe else [])
            planned.append({"slug": value("slug", ""), "action": value("action"), "interval": value("interval_s", 60),
                            "locations": [loc.name for loc in locations]})
        problems = schedule_problems(platform.kind, planned, write_limits=platform.write_limits)
        if problems:
            raise serializers.ValidationError({"interval_s": [f"platform {platform.slug}: {p}" for p in problems]})
        return attrs


class AccountSerializer(serializers.ModelSerializer):
    token = serializers.CharField(write_only=True, required=False, max_length=2000, trim_whitespace=False,
                                  style={"input_type": "password"},
                                  help_text="Write-only: stored encrypted, never returned. Omit to keep the "
                                            "stored token.")

    class Meta:
        model = Account
        fields = ["role", "username", "token", "remote_id"]
        read_only_fields = ["remote_id"]

    def validate_token(self, value: str) -> str:
        # Never echo the value: it is a credential.
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise serializers.ValidationError("The token contains white space or control characters.")
        return value


class PlatformSerializer(serializers.ModelSerializer):
    accounts = AccountSerializer(many=True, required=False,
                                 help_text="The test accounts, by role; accounts not listed are kept.")

    class Meta:
        model = Platform
        fields = ["slug", "name", "kind", "base_url", "enabled", "accounts", "created_at"]
        read_only_fields = ["created_at"]

    def validate_kind(self, value: str) -> str:
        if value not in REGISTRY:
            raise serializers.ValidationError(f"Unknown platform kind. Known kinds: {', '.join(sorted(REGISTRY))}.")
        return value

    def validate_accounts(self, accounts: list[dict]) -> list[dict]:
        roles = [item.get("role") for item in accounts]
        if len(roles) != len(set(roles)):
            raise serializers.ValidationError("One account per role.")
        # A PATCH makes the nested fields optional too; an account is still named by its role, and a
        # new one needs everything.
        if any("role" not in item for item in accounts):
            raise serializers.ValidationError({"role": "Each account needs its role."})
        existing = set(self.instance.accounts.values_list("role", flat=True)) if self.instance else set()
        for item in accounts:
            if item["role"] in existing:
                continue
            for name in ("username", "token"):
                if not item.get(name):
                    raise serializers.ValidationError({name: f"A new account ({item['role']}) needs a {name}."})
        return accounts

    def create(self, validated_data: dict) -> Platform:
        from oncall.management_api.actions import platform_set_accounts

        accounts = validated_data.pop("accounts", [])
        platform = Platform.objects.create(**validated_data)
        platform_set_accounts(platform=platform, accounts=accounts)
        return platform

    def update(self, instance: Platform, validated_data: dict) -> Platform:
        from oncall.management_api.actions import platform_set_accounts

        accounts = validated_data.pop("accounts", None)
        instance = super().update(instance, validated_data)
        dropped = getattr(instance, "tokens_dropped", [])
        if accounts is not None:
            platform_set_accounts(platform=instance, accounts=accounts)
            # Tokens sent with the change are bound to the new origin: only the others were dropped.
            dropped = [role for role in dropped if not any(a["role"] == role and a.get("token") for a in accounts)]
        instance.tokens_dropped = dropped
        return instance

    def to_representation(self, instance: Platform) -> dict:
        data = super().to_representation(instance)
        dropped = getattr(instance, "tokens_dropped", None)
        if dropped:
            # Tokens are bound to the origin they were stored for (docs/security.md).
            data["tokens_dropped"] = dropped
            data["detail"] = (f"base_url (or kind) changed: the stored tokens of {', '.join(dropped)} were dropped "
                              "and are never sent to the new origin; send new tokens with the accounts.")
        return data


class RunSerializer(serializers.ModelSerializer):
    probe = Ref(slug_field="slug", read_only=True)
    location = Ref(slug_field="name", read_only=True)

    class Meta:
        model = Run
        fields = ["key", "probe", "location", "scheduled_for", "started_at", "finished_at", "latency_ms", "outcome",
                  "failure_class", "error", "steps", "evidence", "cleanup", "recorded_at"]
        read_only_fields = fields
