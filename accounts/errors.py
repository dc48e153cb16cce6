"""The refusals an app's rules make, in no protocol's terms.

Each app raises its own (accounts.services, billing.payments…); the layer that
answers turns them into HTTP: the management API's DRF handler and the
gateway (hub/errors.py). A leaf module: it imports nothing of the project, so
every app may use it.
"""


class DomainError(Exception):
    """A change or request the rules refuse; `code` and `param` say which and where."""

    code: str | None = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class Forbidden(DomainError):
    """The actor may not do this."""

    code = "permission_denied"


class NotFound(DomainError):
    code = "not_found"


class Unavailable(DomainError):
    """Not the caller's fault: a dependency or the hub's configuration is missing."""

    code = "service_unavailable"
