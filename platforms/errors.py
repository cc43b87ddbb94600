"""The one error type of probing: it carries the failure class and whether it is permanent.

platforms.http imports this module, never the other way (annotations are not evaluated)."""
from __future__ import annotations


class ProbeError(Exception):
    """An action failed; `failure_class` says how, `result` holds the response if there was one."""

    def __init__(self, failure_class: str, message: str, *, result: platforms.http.HttpResult | None = None,
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.failure_class = str(failure_class)
        self.message = message
        self.result = result
        # Permanent: retrying the same call cannot help (bad token, refused input).
        self.permanent = permanent
