"""Persisted queries: Apollo's automatic persisted-query protocol (`extensions.persistedQuery`
with the document's SHA-256; the document itself is sent once, after `PERSISTED_QUERY_NOT_FOUND`)
and, for production, an allow-list of documents from a client build's manifest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import orjson
from cachetools import LRUCache
from strawberry.http import GraphQLRequestData

from modelql.graph.errors import ErrorCode

HASH = re.compile(r"[0-9a-f]{64}")
APOLLO_MANIFEST = "apollo-persisted-query-manifest"


class PersistedQueryMode(StrEnum):
    OFF = "off"
    """`extensions.persistedQuery` is refused (`PERSISTED_QUERY_NOT_SUPPORTED`)."""
    ON = "on"
    """Any document may be sent, and registered by its hash (automatic persisted queries)."""
    ONLY = "only"
    """Only the documents of the allow-list run, sent whole or by hash."""


class PersistedQueryError(Exception):
    """A persisted-query request that cannot run, answered before any GraphQL runs."""

    def __init__(self, message: str, code: ErrorCode, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def document_hash(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


class ManifestError(ValueError):
    """An allow-list file that cannot be used (ModelQL refuses to start with it)."""


def load_manifest(path: Path) -> dict[str, str]:
    """Documents by SHA-256 from an Apollo persisted-query manifest (`operations[].id/body`)
    or a flat `{"<sha256>": "<document>"}` map (GraphQL Code Generator, Relay with sha256);
    every id must be its document's SHA-256."""
    try:
        content = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ManifestError(f"{path}: {error}") from error
    if isinstance(content, dict) and content.get("format") == APOLLO_MANIFEST:
        operations = content.get("operations")
        if not isinstance(operations, list):
            raise ManifestError(f"{path}: `operations` must be a list.")
        pairs = [(op.get("id"), op.get("body")) for op in operations if isinstance(op, dict)]
    elif isinstance(content, dict):
        pairs = list(content.items())
    else:
        raise ManifestError(f"{path}: expected an object (an Apollo manifest or a map).")
    documents: dict[str, str] = {}
    for id_, body in pairs:
        if not isinstance(id_, str) or not isinstance(body, str) or document_hash(body) != id_:
            raise ManifestError(f"{path}: {id_!r} is not the SHA-256 of its document.")
        documents[id_] = body
    return documents


class PersistedQueries:
    """Resolves a request's `extensions.persistedQuery` into its document, and keeps the
    documents clients register (bounded, per process: a replica that lacks one answers
    `PERSISTED_QUERY_NOT_FOUND` and the client sends it again). A document longer than
    `max_length` is refused when it runs, and never kept."""

    def __init__(
        self,
        mode: PersistedQueryMode,
        listed: dict[str, str],
        *,
        max_registered: int,
        max_length: int,
    ) -> None:
        self.mode = mode
        self._listed = listed
        self._registered: LRUCache[str, str] = LRUCache(max_registered)
        self._max_length = max_length

    @property
    def allowed(self) -> frozenset[str] | None:
        """The hashes of the only documents that run; None: any document."""
        return frozenset(self._listed) if self.mode is PersistedQueryMode.ONLY else None

    def resolve(self, request: GraphQLRequestData) -> GraphQLRequestData:
        """The request with its document, looked up by hash when only the hash was sent."""
        extension = (request.extensions or {}).get("persistedQuery")
        if extension is None:
            return request
        if self.mode is PersistedQueryMode.OFF:
            raise PersistedQueryError(
                "Persisted queries are turned off on this server: send the document.",
                ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
                400,
            )
        digest = _hash_of(extension)
        if request.query is None:
            query = self._listed.get(digest) or self._registered.get(digest)
            if query is None:
                raise PersistedQueryError(
                    "PersistedQueryNotFound", ErrorCode.PERSISTED_QUERY_NOT_FOUND, 200
                )
            return replace(request, query=query)
        if document_hash(request.query) != digest:
            raise PersistedQueryError(
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`.",
                ErrorCode.PERSISTED_QUERY_HASH_MISMATCH,
                400,
            )
        if self.mode is PersistedQueryMode.ON and len(request.query) <= self._max_length:
            self._registered[digest] = request.query
        return request


def _hash_of(extension: object) -> str:
    """The lower-case hex SHA-256 of a well-formed `persistedQuery` extension."""
    version = extension.get("version") if isinstance(extension, dict) else None
    if not isinstance(extension, dict) or isinstance(version, bool) or version != 1:
        raise PersistedQueryError(
            "`extensions.persistedQuery` must be {version: 1, sha256Hash: <64 hex digits>}.",
            ErrorCode.PERSISTED_QUERY_INVALID,
            400,
        )
    digest = extension.get("sha256Hash")
    if not isinstance(digest, str) or not HASH.fullmatch(digest.lower()):
        raise PersistedQueryError(
            "`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits.",
            ErrorCode.PERSISTED_QUERY_INVALID,
            400,
        )
    return digest.lower()
