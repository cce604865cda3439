"""Content-addressed file storage on the local file system (uploads and page images)."""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredFile:
    """Where a blob was stored and what it was."""

    key: str
    sha256: str
    size: int


class LocalStorage:
    """Stores blobs under `root/ab/cd/<sha256><suffix>`; the same bytes are stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key outside the store: {key!r}")
        return path

    def put_bytes(self, data: bytes, suffix: str = "") -> StoredFile:
        """Store `data` durably (write to a temp file, fsync, rename) and return its key."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}"
        path = self._path_for(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredFile(key=key, sha256=digest, size=len(data))

    def path(self, key: str) -> Path:
        """The local path of a stored blob."""
        return self._path_for(key)

    def read_bytes(self, key: str) -> bytes:
        """The bytes of a stored blob."""
        return self._path_for(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        return self._path_for(key).is_file()

    def remove(self, key: str) -> bool:
        """Remove a blob (once no row names it: app/services/housekeeping.py); whether it was
        there."""
        try:
            self._path_for(key).unlink()
        except FileNotFoundError:
            return False
        return True


def move_into_store(storage: LocalStorage, source: Path, sha256: str, suffix: str) -> StoredFile:
    """Move an already hashed temp file into the store (or drop it if the blob is there)."""
    key = f"{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}"
    target = storage.path(key)
    size = source.stat().st_size
    if target.exists():
        source.unlink(missing_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)
    return StoredFile(key=key, sha256=sha256, size=size)
