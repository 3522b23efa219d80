"""The API server's error answers as typed exceptions, without the personal data they quote.

Pure (no I/O): the client raises these, and a module that only needs to tell a 409 from a 404
imports them without the HTTP stack.
"""

from __future__ import annotations

import re


class ApiError(Exception):
    """The API server answered with an error Status."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: a stale resourceVersion, or (reason AlreadyExists) a create of an existing name."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    pass


_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 403: Forbidden, 422: Invalid}


def api_error(code: int, reason: str, message: str) -> ApiError:
    """The error for an answer of HTTP status ``code``, its message's quoted values redacted."""
    return _ERRORS.get(code, ApiError)(code, reason, redact_values(message))


# The API server quotes the offending value in a field error ('spec.customerEmail: Invalid value:
# "ada@example.com": ...'), and these messages go into conditions, Events and logs. String values
# are what can be personal data (names, streets, emails), so they are replaced; the field and the
# rule stay, which is what a person needs to act. CEL rule errors name the value's type instead
# of the value ("object", "string"), which is kept.
_QUOTED_VALUE = re.compile(r'((?:Invalid|Unsupported|Duplicate) value|Not found): "(?:[^"\\]|\\.)*"')
_TYPE_NAMES = {f'"{t}"' for t in ("object", "array", "string", "integer", "number", "boolean")}


def redact_values(message: str) -> str:
    """``message`` with the string values quoted in its field errors replaced by ``"[redacted]"``."""

    def replace(match: re.Match[str]) -> str:
        value = match.group(0)[len(match.group(1)) + 2 :]
        return match.group(0) if value in _TYPE_NAMES else f'{match.group(1)}: "[redacted]"'

    return _QUOTED_VALUE.sub(replace, message)
