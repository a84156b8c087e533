"""Prediction jobs as the API shows them: state, progress, counts and the first failing rows."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from modelql.graph.context import GraphContext
from modelql.graph.types.nodes import ModelType, ModelVersionType
from modelql.models.vocabulary import JobState
from modelql.services.prediction_jobs import JobView

Info = strawberry.Info[GraphContext, None]

# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
PredictionJobState = JobState
strawberry.enum(PredictionJobState, name="PredictionJobState")


def job_id(text: str) -> uuid.UUID:
    """A job's id from the API's; the nil UUID, which names no job, for text that is not one."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.UUID(int=0)


@strawberry.type(description="A row of the job's file that was not stored, and why.")
class PredictionJobError:
    row: int = strawberry.field(description="Its number among the data rows, from 1.")
    reason: str


@strawberry.type(
    description="How many of the job's rows were scored or failed, and what its shadows did."
)
class PredictionJobCounts:
    total: int | None = strawberry.field(
        description="Data rows in the file; null until the worker has read it."
    )
    scored: int = strawberry.field(description="Rows scored and stored as predictions.")
    failed: int = strawberry.field(
        description="Rows that failed validation (or whose output was not finite)."
    )
    shadowed: int = strawberry.field(
        description="Shadow answers stored with the job's predictions (`Prediction.shadows`): "
        "one per shadow version and sampled row, a row the shadow refused included (with its "
        "`refusal`). The model's shadows when each chunk is scored (`setShadow`), less the "
        "job's own version; rows are sampled by the job's id and their row number, so a "
        "resumed job draws the same rows. 0 without shadows."
    )
    shadow_failed: int = strawberry.field(
        description="Sampled rows a shadow version did not answer because its scoring failed "
        "(its artifact could not be loaded, its estimator raised), counted per version; the "
        "job goes on without it."
    )


@strawberry.type(
    description="A batch scoring job. Its rows become stored predictions with the job's id as "
    "their `requestId`, the submitter as their caller and the row number as `batchIndex`."
)
class PredictionJob:
    id: strawberry.ID
    state: PredictionJobState
    progress: float = strawberry.field(description="Share of the rows settled, 0 to 1.")
    counts: PredictionJobCounts
    errors: list[PredictionJobError] = strawberry.field(
        description="The first failing rows (at most 100), by row number; `counts.failed` "
        "has them all."
    )
    partial: bool = strawberry.field(description="Whether valid rows are stored when others fail.")
    source: str = strawberry.field(description="The file's name.")
    message: str | None = strawberry.field(description="Why the job failed, when it did.")
    submitter: str | None = strawberry.field(description="The API key that submitted it.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pruned_at: datetime | None = strawberry.field(
        description="When its uploaded file and progress bookkeeping were dropped, "
        "MODELQL_JOB_RETENTION_DAYS after it finished; its predictions and this record stay."
    )
    model_id: strawberry.Private[uuid.UUID]
    version_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def model(self, info: Info) -> ModelType:
        row = await info.context.loaders.model_by_id.load(self.model_id)
        assert row is not None, "models are never deleted"
        return ModelType.from_row(row)

    @strawberry.field(description="The version that scores the rows.")
    async def version(self, info: Info) -> ModelVersionType:
        version = await info.context.loaders.version_by_id.load(self.version_id)
        assert version is not None, "a version with jobs is never deleted"
        return ModelVersionType.from_version(version)

    @classmethod
    def of(cls, job: JobView) -> PredictionJob:
        return cls(
            id=strawberry.ID(str(job.id)),
            state=job.state,
            progress=job.progress,
            counts=PredictionJobCounts(
                total=job.rows_total,
                scored=job.rows_scored,
                failed=job.rows_failed,
                shadowed=job.rows_shadowed,
                shadow_failed=job.shadow_rows_failed,
            ),
            errors=[PredictionJobError(row=error.row, reason=error.reason) for error in job.errors],
            partial=job.partial,
            source=job.source_name,
            message=job.message,
            submitter=job.submitter,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            pruned_at=job.pruned_at,
            model_id=job.model_id,
            version_id=job.model_version_id,
        )
