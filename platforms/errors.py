"""The one error type of probing: it carries the failure class and whether it is permanent."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from platforms.http import HttpResult


class ProbeError(Exception):
    """An action failed; `failure_class` says how, `result` holds the response if there was one."""

    def __init__(self, failure_class: str, message: str, *, result: HttpResult | None = None,
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.failure_class = str(failure_class)
        self.message = message
        self.result = result
        # Permanent: retrying the same call cannot help (bad token, refused input).
        self.permanent = permanent
