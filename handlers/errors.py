"""Domain errors. The HTTP edge maps them to status codes; the chat edge to Chinese replies."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: `message` is precise English for logs and API clients."""

    code = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidInput(DomainError):
    code = "invalid_input"


class InvalidTransition(DomainError):
    """The action is not allowed from the case's current state; nothing was changed."""

    code = "invalid_transition"


class Conflict(DomainError):
    code = "conflict"
