"""Content-addressed, write-once storage of joblib model artifacts under one root directory."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import joblib

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHUNK = 1 << 20


class ArtifactError(Exception):
    """Base of every artifact store error."""


class ArtifactIntegrityError(ArtifactError):
    """An artifact's bytes do not match the recorded sha256."""


class ArtifactPathError(ArtifactError):
    """A path escapes the root, crosses a symlink out of it, or names no file."""


class ArtifactExistsError(ArtifactError):
    """The target artifact file already exists; artifacts are never overwritten."""


@dataclass(frozen=True)
class StoredArtifact:
    """Where an artifact lives (POSIX path relative to the root) and its sha256 (hex)."""

    path: str
    sha256: str
    created: bool = True  # False when an identical file was already there and is reused


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Artifacts stored as `<root>/<model_name>/v<version>-<sha[:12]>.joblib`, never overwritten;
    storing the same bytes again reuses the file (another database on the same root)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, estimator: Any, *, model_name: str, version: int) -> StoredArtifact:
        """Dump an estimator with joblib and store it."""
        return self._store(lambda handle: joblib.dump(estimator, handle), model_name, version)

    def import_file(self, source: Path, *, model_name: str, version: int) -> StoredArtifact:
        """Copy an existing joblib file into the store."""

        def copy(handle: BinaryIO) -> None:
            with Path(source).open("rb") as original:
                shutil.copyfileobj(original, handle, _CHUNK)

        return self._store(copy, model_name, version)

    def resolve(self, path: str) -> Path:
        """The absolute path of an existing artifact file, refusing anything outside the root."""
        relative = PurePosixPath(path)
        if not path or relative.is_absolute():
            raise ArtifactPathError(f"artifact path must be relative to the root: {path!r}")
        if ".." in relative.parts:
            raise ArtifactPathError(f"artifact path must not contain '..': {path!r}")
        root = self.root.resolve()
        resolved = (root / relative).resolve()
        if not resolved.is_relative_to(root):
            raise ArtifactPathError(f"artifact path leads outside the artifact root: {path!r}")
        if not resolved.is_file():
            raise ArtifactPathError(f"artifact file does not exist: {path!r}")
        return resolved

    def load(self, path: str, sha256: str) -> Any:
        """Load an artifact after checking its bytes against the expected sha256."""
        data = self.resolve(path).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(actual, sha256.lower()):
            raise ArtifactIntegrityError(
                f"artifact {path!r} sha256 mismatch: expected {sha256}, got {actual}"
            )
        return joblib.load(io.BytesIO(data))

    def _store(
        self, write: Callable[[BinaryIO], Any], model_name: str, version: int
    ) -> StoredArtifact:
        """Write to a temp file in the root, hash it, then hard-link it to its final name."""
        directory = self._model_directory(model_name, version)
        descriptor, temp_name = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".part")
        temp = Path(temp_name)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            digest = sha256_of(temp)
            name = f"v{version}-{digest[:12]}.joblib"
            try:
                os.link(temp, directory / name)
            except FileExistsError:
                if not hmac.compare_digest(sha256_of(directory / name), digest):
                    raise ArtifactExistsError(
                        f"artifact {model_name}/{name} already exists in {self.root} with other "
                        "contents; move it away or use another MODELQL_ARTIFACT_ROOT"
                    ) from None
                return StoredArtifact(path=f"{model_name}/{name}", sha256=digest, created=False)
        finally:
            temp.unlink(missing_ok=True)
        return StoredArtifact(path=f"{model_name}/{name}", sha256=digest)

    def _model_directory(self, model_name: str, version: int) -> Path:
        """Validate the name and version and create the model's directory inside the root."""
        if not _MODEL_NAME.fullmatch(model_name):
            raise ValueError(f"invalid model name for an artifact path: {model_name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"artifact version must be a positive integer, got {version!r}")
        directory = self.root / model_name
        directory.mkdir(parents=True, exist_ok=True)
        if not directory.resolve().is_relative_to(self.root.resolve()):
            raise ArtifactPathError(f"model directory is outside the artifact root: {model_name}")
        return directory
