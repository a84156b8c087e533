"""The model cache: loads each artifact once (checksum verified) and scores off the loop."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from modelql.models.artifacts import ArtifactError, ArtifactStore
from modelql.models.cacheability import InferenceProfile, inference_profile
from modelql.models.predictor import Predictor, Scores
from modelql.services.catalogue import Version
from modelql.services.errors import ModelUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredBatch:
    scores: Scores
    latency_ms: float
    """Wall time of the one estimator call that scored the whole batch."""


class ModelCache:
    """Predictors by version id: each artifact is read, verified and unpickled once, when first
    needed, and kept (versions are immutable), with its inference profile (measured once, on
    load); a failed load is retried on the next request."""

    def __init__(self, store: ArtifactStore, *, workers: int = 2) -> None:
        self._store = store
        self._predictors: dict[uuid.UUID, Predictor] = {}
        self._profiles: dict[uuid.UUID, InferenceProfile] = {}
        self._loading: dict[uuid.UUID, asyncio.Lock] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")

    def __len__(self) -> int:
        """How many versions are loaded."""
        return len(self._predictors)

    async def predictor(self, version: Version) -> Predictor:
        """The version's predictor, loading its artifact on first use."""
        if (ready := self._predictors.get(version.id)) is not None:
            return ready
        lock = self._loading.setdefault(version.id, asyncio.Lock())
        async with lock:
            if (ready := self._predictors.get(version.id)) is not None:
                return ready
            loop = asyncio.get_running_loop()
            predictor, profile = await loop.run_in_executor(self._executor, self._load, version)
            self._profiles[version.id] = profile
            self._predictors[version.id] = predictor
            return predictor

    async def profile(self, version: Version) -> InferenceProfile:
        """The version's inference profile (models/cacheability.py), loading it if needed."""
        if (known := self._profiles.get(version.id)) is not None:
            return known
        await self.predictor(version)
        return self._profiles[version.id]

    async def score(
        self,
        version: Version,
        rows: Sequence[Mapping[str, object]],
        matrix: np.ndarray | None = None,
    ) -> ScoredBatch:
        """Score every row in one estimator call, in a worker thread (from `matrix`, the rows
        as the estimator's matrix, when the caller has it)."""
        predictor = await self.predictor(version)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _timed_predict, predictor, rows, matrix)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _load(self, version: Version) -> tuple[Predictor, InferenceProfile]:
        try:
            estimator = self._store.load(version.artifact_path, version.artifact_sha256)
        except ArtifactError as error:
            logger.critical(
                "refusing to load model version %s (%s): %s",
                version.id,
                version.artifact_path,
                error,
            )
            raise ModelUnavailableError(
                f"Model version {version.number} cannot be loaded: its artifact failed the "
                "integrity check or is missing. Operators have been alerted in the log."
            ) from error
        predictor = Predictor(estimator, version.signature, version.labels)
        profile = inference_profile(predictor)
        logger.info(
            "loaded model version %s from %s (%s, %s)",
            version.id,
            version.artifact_path,
            "scores rows one by one" if profile.row_wise else "scores rows together",
            "not timed" if profile.call_s is None else f"{profile.call_s * 1000:.2f} ms a call",
        )
        return predictor, profile


def refusal_reason(error: ValueError) -> str:
    """What an estimator's refusal to score says, short enough to show a client: its first
    line, at most 200 characters."""
    return str(error).splitlines()[0][:200]


def _timed_predict(
    predictor: Predictor, rows: Sequence[Mapping[str, object]], matrix: np.ndarray | None
) -> ScoredBatch:
    started = time.perf_counter()
    scores = predictor.score(rows, matrix)
    return ScoredBatch(scores=scores, latency_ms=(time.perf_counter() - started) * 1000)
