"""Domain errors: what a user can cause and be told about (the API maps them to statuses)."""


class HistocrError(Exception):
    """Base of the errors a user can cause and be told about."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class InvalidRequest(HistocrError):
    """A request whose values are not usable (unknown engine, no documents)."""

    status_code = 422


class EngineUnavailable(HistocrError):
    """An engine that is not installed or not reachable."""

    status_code = 503
