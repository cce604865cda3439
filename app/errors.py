"""Domain errors: what a user can cause and be told about (the API maps them to statuses)."""


class HistocrError(Exception):
    """Base of the errors a user can cause and be told about."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the message (a subclass adds `Retry-After`)."""
        return {}

    @property
    def extra(self) -> dict[str, object]:
        """Keys the answer's body carries besides `detail` (a conflict adds the current value)."""
        return {}


class InvalidUpload(HistocrError):
    """An upload that is empty, corrupt, of the wrong type or too big."""

    status_code = 422


class UploadTooLarge(InvalidUpload):
    """An upload over the size limit."""

    status_code = 413


class NotFound(HistocrError):
    """A project, document, page or run that does not exist."""

    status_code = 404


class Conflict(HistocrError):
    """A request that clashes with the current state (a duplicate name, a run not done)."""

    status_code = 409


class VersionConflict(Conflict):
    """An edit made to a version that is no longer the current one: someone else was faster.
    The answer carries the current state, so the client can show it and try again."""

    def __init__(self, message: str, current: dict[str, object]) -> None:
        super().__init__(message)
        self.current = current

    @property
    def extra(self) -> dict[str, object]:
        """`current`: the row as it is now."""
        return {"current": self.current}


class InvalidRequest(HistocrError):
    """A request whose values are not usable (unknown engine, no documents)."""

    status_code = 422


class EngineUnavailable(HistocrError):
    """An engine that is not installed or not reachable."""

    status_code = 503


class NotAuthenticated(HistocrError):
    """A request without valid credentials where they are required."""

    status_code = 401


class Forbidden(HistocrError):
    """An authenticated user whose role does not allow the request."""

    status_code = 403


class TooManyRequests(HistocrError):
    """A rate limit or a quota that is used up; `retry_after` seconds until it may succeed."""

    status_code = 429

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """`Retry-After`: when to try again."""
        return {"Retry-After": str(self.retry_after)}
