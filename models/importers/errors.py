"""The one error the importers raise: the input cannot be turned into page texts."""


class ImportFormatError(ValueError):
    """An imported transcription is unreadable or does not fit the scan; the message says why."""
