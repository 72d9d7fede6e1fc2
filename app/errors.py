"""Every way a widget request can fail, and what the browser is told; and the two
errors of the command line.

    WidgetProxyError                 status  what the browser sees
    ├── RequestError                 4xx     the request itself is wrong
    │   ├── BadRequest               400     an unknown colour or widget type
    │   ├── InvalidEmail             400     the session's email can't be sent upstream
    │   ├── NotAuthenticated         401     no session (or a redirect to LOGIN_URL)
    │   ├── OriginNotAllowed         403     an Origin header outside ALLOWED_ORIGINS
    │   ├── IncompleteSession        403     the session lacks a value the vendor's token needs
    │   ├── UnknownWidget            404     a widget this proxy does not serve
    │   ├── TargetTooLong            414     the request's target is over MAX_REQUEST_TARGET_BYTES
    │   ├── RateLimited              429     too many requests from this user or IP
    │   └── HeadersTooLarge          431     the request's headers are over MAX_HEADER_BYTES
    └── UpstreamError                5xx     the vendor failed; its body never reaches the browser
        ├── UpstreamRejectedKey      502     signin answered 401/403: the API key was refused
        ├── UpstreamUnavailable      502     the connection failed or broke
        ├── UpstreamBadStatus        502     an unexpected status (5xx, other 4xx)
        ├── UpstreamBadResponse      502     unusable: bad JSON, no token, no placeholder, too big
        ├── UpstreamBusy             503     429 or 503, with the upstream's Retry-After
        ├── CircuitOpen              503     the vendor failed repeatedly; not asked until cooldown
        └── UpstreamTimeout          504     the upstream did not answer in time

`message` is what the browser is shown: for a request error it names the problem
(the detail is built from our own checks); for an upstream error it stays generic.
`detail` is for the log line. Neither ever holds an upstream body, the API key or a
token.

Outside the request path (nothing a browser sees):

    SettingsError                    the configuration is unusable: every problem at once
                                     (start-up, a reload, `widget-proxy check`)
    StepFailed                       a step of `widget-proxy check` failed; the check stops
"""

from __future__ import annotations

from typing import ClassVar


class WidgetProxyError(Exception):
    status: ClassVar[int] = 500
    public: ClassVar[str] = "Something went wrong."
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str = "",
        *,
        retry_after: str | None = None,
        retryable: bool = False,
        unhealthy: bool = False,
    ) -> None:
        super().__init__(detail or self.public)
        self.detail = detail or self.public
        self.retry_after = retry_after
        # Set where raised: whether another attempt may cure it, and whether it says
        # the upstream is unwell (it counts against the circuit breaker).
        self.retryable = retryable
        self.unhealthy = unhealthy

    @property
    def message(self) -> str:
        return self.public


class RequestError(WidgetProxyError):
    status = 400

    @property
    def message(self) -> str:
        return f"{self.public} ({self.detail})" if self.detail != self.public else self.public


class BadRequest(RequestError):
    public = "This request is not valid."
    code = "bad_request"


class InvalidEmail(RequestError):
    public = "The signed-in account has no usable email address."
    code = "invalid_email"


class NotAuthenticated(RequestError):
    status = 401
    public = "Please sign in to see this widget."
    code = "not_authenticated"


class OriginNotAllowed(RequestError):
    status = 403
    public = "This site may not use the widget."
    code = "origin_not_allowed"


class RateLimited(RequestError):
    status = 429
    public = "Too many requests. Please wait a moment."
    code = "rate_limited"


class TargetTooLong(RequestError):
    status = 414
    public = "The request's address is too long."
    code = "request_target_too_long"


class HeadersTooLarge(RequestError):
    status = 431
    public = "The request's headers are too large."
    code = "headers_too_large"


class IncompleteSession(RequestError):
    status = 403
    public = "Your session lacks what this widget needs to know about you."
    code = "incomplete_session"


class UnknownWidget(RequestError):
    status = 404
    public = "There is no such widget."
    code = "unknown_widget"


class UpstreamError(WidgetProxyError):
    status = 502
    public = "The widget service answered with an error. Please try again later."
    code = "upstream_error"


class UpstreamRejectedKey(UpstreamError):
    code = "upstream_rejected_key"


class UpstreamUnavailable(UpstreamError):
    public = "The widget service could not be reached. Please try again later."
    code = "upstream_unavailable"


class UpstreamBadStatus(UpstreamError):
    code = "upstream_bad_status"


class UpstreamBadResponse(UpstreamError):
    public = "The widget service sent something unusable. Please try again later."
    code = "upstream_bad_response"


class UpstreamBusy(UpstreamError):
    status = 503
    public = "The widget service is busy. Please try again shortly."
    code = "upstream_busy"


class CircuitOpen(UpstreamError):
    status = 503
    public = "The widget service is unavailable. Please try again shortly."
    code = "upstream_circuit_open"


class UpstreamTimeout(UpstreamError):
    status = 504
    public = "The widget service took too long to answer. Please try again later."
    code = "upstream_timeout"


class SettingsError(Exception):
    """Raised when the configuration is unusable; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class StepFailed(Exception):
    """A step of `widget-proxy check` failed; the check stops here.

    `reason` is printed as it is: it names no secret and no token (at most a fingerprint).
    """

    def __init__(self, step: str, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason
        self.hint = hint
