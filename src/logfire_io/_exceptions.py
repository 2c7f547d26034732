"""Every error logfire-io raises, under one root.

```
LogfireIOError
├── ConfigurationError         (also a ValueError) bad arguments, no token, unknown token region
├── QueryHTTPError             the service answered with an error status; .status_code .request .response .detail
│   ├── QueryExecutionError    400: the SQL failed to plan or run
│   ├── QueryRequestError      422: the request was invalid (names the field)
│   ├── AuthenticationError    401/403: the read token was refused
│   ├── RateLimitError         429; .retry_after
│   └── UnexpectedResponseError any other status, or a body that is not what was asked for
├── TransportError             the service could not be reached or the connection broke, after retries
├── IncompleteResponseError    a body (an Arrow stream) ended early, after retries
└── RowCapError                a result may have been cut at the service's 10,000-row cap
```

Every failure a user can cause or meet is one of these, with a message that says what to do; an argument of the
wrong type may also raise ``TypeError``, as Python itself does. Messages never contain the read token, in any
encoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "IncompleteResponseError",
    "LogfireIOError",
    "QueryExecutionError",
    "QueryHTTPError",
    "QueryRequestError",
    "RateLimitError",
    "RowCapError",
    "TransportError",
    "UnexpectedResponseError",
]


class LogfireIOError(Exception):
    """Base class of every error raised by logfire-io."""


class ConfigurationError(LogfireIOError, ValueError):
    """Raised when arguments or the environment cannot work: no token, an unknown token region, bad options."""


class QueryHTTPError(LogfireIOError):
    """Raised when the Query API answers with an error status.

    Attributes
    ----------
    status_code
        The HTTP status.
    detail
        The service's explanation (its ``detail`` field), or the start of the body.
    request, response
        The httpx request and response (the response body has been read).
    """

    def __init__(
        self, message: str, *, status_code: int, detail: object, request: httpx.Request, response: httpx.Response
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.request = request
        self.response = response


class QueryExecutionError(QueryHTTPError):
    """Raised on 400: the SQL failed to parse, plan or run on the service."""


class QueryRequestError(QueryHTTPError):
    """Raised on 422: the request itself was invalid (a bad ``limit``, timestamp or field)."""


class AuthenticationError(QueryHTTPError):
    """Raised on 401 or 403: the read token is missing, wrong, expired or lacks access."""


class RateLimitError(QueryHTTPError):
    """Raised on 429 when retrying cannot help (no ``Retry-After``: a quota) or retries ran out.

    Attributes
    ----------
    retry_after
        Seconds the service asked to wait, or None when it did not say.
    """

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UnexpectedResponseError(QueryHTTPError):
    """Raised on any other status, or when a 200 body is not the format asked for (an HTML page, say)."""


class TransportError(LogfireIOError):
    """Raised when the service cannot be reached, or the connection fails, after the allowed retries."""


class IncompleteResponseError(LogfireIOError):
    """Raised when a response body ends before it is complete (an Arrow stream without its end marker)."""


class RowCapError(LogfireIOError):
    """Raised when a request returned exactly the row cap, so rows may be missing, and the read cannot split."""
