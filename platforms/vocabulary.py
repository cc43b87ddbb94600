"""The words platforms and probes share: actions, failure classes, outcomes, artifact kinds.

Plain choices with no table of their own, so that platform adapters (platforms/) can name them
without importing the models of a higher layer. probes.models re-exports them.
"""
from django.db import models


class Action(models.TextChoices):
    POST = "post", "Post"
    REPOST = "repost", "Repost"
    FOLLOW = "follow", "Follow"
    DM = "dm", "Direct message"
    READ = "read", "Read timeline"
    LIMITS = "limits", "Limits enforced"
    # A post by the prober reaches the home timeline of the partner, who follows it (fan-out).
    DELIVERY = "delivery", "Post delivery"


class FailureClass(models.TextChoices):
    TIMEOUT = "timeout"
    CONNECT = "connect"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    READ_ONLY = "read_only"
    AUTH = "auth"
    REJECTED = "rejected"
    INVARIANT = "invariant"
    UNEXPECTED = "unexpected"
    BAD_RESPONSE = "bad_response"  # an answer that cannot be read as what it claims (JSON nested too deep)
    NOT_DELIVERED = "not_delivered"  # a post accepted (and readable by its author) never reached a follower


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class ArtifactKind(models.TextChoices):
        STATUS = "status"
        REBLOG = "reblog"
        FOLLOW = "follow"
        DIRECT_MESSAGE = "direct_message"
        SCRIPTED = "scripted"  # what a scripted probe's cleanup step removes; remote_id names the step


class Artifact:
    """What adapters need of probes.models.Artifact without importing it: its kinds."""

    Kind = ArtifactKind
