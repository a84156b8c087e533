"""What a query's answer is read from: for every field of the schema, a decision (an allow-list:
a field without one fails `tests/graph/test_answer_dependencies.py`), and the walk that
gathers the datasets a document reads."""

from __future__ import annotations

from enum import Enum

from graphql import (
    DocumentNode,
    EnumValueNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

from modelql.services.generations import Dataset


class Reads(Enum):
    NOTHING = ()
    """Fixed by the schema (`__typename`, introspection)."""
    CATALOGUE = (Dataset.CATALOGUE,)
    STORE = (Dataset.CATALOGUE, Dataset.STORE)
    STORE_UNLESS_OFFLINE_SPLIT = ("split",)
    """The catalogue when the `split` argument is an offline split written in the document
    (or absent: the field's default is offline), else the store too (LIVE, a variable)."""


OFFLINE_SPLITS = frozenset({"TRAIN", "VALIDATION", "TEST"})

FIELD_READS: dict[str, dict[str, Reads]] = {
    "Query": {
        "node": Reads.STORE,  # any node, predictions included
        "models": Reads.CATALOGUE,
        "model": Reads.CATALOGUE,
        "modelVersion": Reads.CATALOGUE,
        "predictions": Reads.STORE,
        "prediction": Reads.STORE,
        "predictionStats": Reads.STORE,
        "compareVersions": Reads.STORE,
        "alertRules": Reads.STORE,  # alert states move the store's generation
        "predictionJob": Reads.STORE,  # moves with every job transaction (modelql_jobs)
    },
    "PredictionJob": {
        **dict.fromkeys(
            [
                "id",
                "state",
                "progress",
                "counts",
                "errors",
                "partial",
                "source",
                "message",
                "submitter",
                "createdAt",
                "startedAt",
                "finishedAt",
                "prunedAt",  # pruning notifies modelql_jobs once per transaction
            ],
            Reads.STORE,
        ),
        "model": Reads.CATALOGUE,
        "version": Reads.CATALOGUE,
    },
    "PredictionJobCounts": dict.fromkeys(
        ["total", "scored", "failed", "shadowed", "shadowFailed"], Reads.STORE
    ),
    "PredictionJobError": dict.fromkeys(["row", "reason"], Reads.STORE),
    "Model": {
        **dict.fromkeys(
            [
                "id",
                "name",
                "description",
                "task",
                "tags",
                "createdAt",
                "updatedAt",
                "versions",
                "version",
                "defaultVersion",
                "aliases",
                "aliasHistory",
                "versionAt",
                "trafficSplit",
                "trafficSplitHistory",
                "shadowVersions",
                "shadowSample",
                "shadowHistory",
            ],
            Reads.CATALOGUE,
        ),
        "predictions": Reads.STORE,
    },
    "ModelVersion": {
        **dict.fromkeys(
            [
                "id",
                "number",
                "description",
                "algorithm",
                "framework",
                "frameworkVersion",
                "artifactSha256",
                "createdAt",
                "trainedAt",
                "labels",
                "inputSchema",
                "dataset",
                "model",
                "aliases",
                "trainingArguments",
                "trainingArgument",
                "signatureChanges",
            ],
            Reads.CATALOGUE,
        ),
        "performance": Reads.STORE_UNLESS_OFFLINE_SPLIT,
        "metric": Reads.STORE_UNLESS_OFFLINE_SPLIT,
        "inputDrift": Reads.STORE,
        "estimatedPerformance": Reads.STORE,
        "predictions": Reads.STORE,
    },
}
"""Types whose fields read different datasets: a decision per field."""

TYPE_READS: dict[str, Reads] = {
    **dict.fromkeys(
        [
            "Node",
            "ModelConnection",
            "ModelEdge",
            "ModelVersionConnection",
            "ModelVersionEdge",
            "PageInfo",
            "ModelAlias",
            "AliasChange",
            "TrafficShare",
            "TrafficSplitChange",
            "TrafficSplitShare",
            "FeatureSpec",
            "DatasetInfo",
            "TrainingArgument",
            "PerformanceSlice",
            "Metric",
            "SignatureChange",
            "ShadowChange",
            "ComparisonSummary",
            "PairedTest",
        ],
        Reads.CATALOGUE,
    ),
    **dict.fromkeys(
        [
            "PredictionConnection",
            "PredictionEdge",
            "Prediction",
            "ClassProbability",
            "Outcome",
            "PredictionStats",
            "LabelCount",
            "PredictionGroup",
            "DriftReport",
            "FeatureDrift",
            "DriftBin",
            "EstimatedPerformance",
            "EstimatedPeriod",
            "VersionComparison",
            "LabelChange",
            "PredictionDiff",
            "CreatePredictionPayload",
            "CreatePredictionsPayload",
            "SetAliasPayload",
            "SetTrafficSplitPayload",
            "SetShadowPayload",
            "ShadowPrediction",
            "RecordOutcomesPayload",
            "PredictionJobPayload",
            "UserError",
            "CatalogueEvent",
            "AlertRule",
            "AlertDelivery",
            "CreateAlertRulePayload",
            "AlertRulePayload",
        ],
        Reads.STORE,
    ),
}
"""Types whose fields all read the same datasets (reached through a field decided above)."""


def field_reads(parent: str, field: str) -> Reads | None:
    """The decision for `parent.field`; None when there is none (then: read everything)."""
    if field.startswith("__"):
        return Reads.NOTHING
    by_field = FIELD_READS.get(parent)
    if by_field is not None:
        return by_field.get(field)
    return TYPE_READS.get(parent)


class _DatasetsRead(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self._type_info = type_info
        self.datasets: set[Dataset] = set()

    def enter_field(self, node: FieldNode, *_: object) -> None:
        parent = self._type_info.get_parent_type()
        name = parent.name if parent is not None else ""
        reads = field_reads(name, node.name.value)
        if reads is None:
            self.datasets.update(Dataset)
        elif reads is Reads.STORE_UNLESS_OFFLINE_SPLIT:
            self.datasets.update(_by_split(node))
        else:
            self.datasets.update(reads.value)


def _by_split(node: FieldNode) -> tuple[Dataset, ...]:
    split = next((a.value for a in node.arguments or () if a.name.value == "split"), None)
    offline = split is None or (isinstance(split, EnumValueNode) and split.value in OFFLINE_SPLITS)
    return Reads.CATALOGUE.value if offline else Reads.STORE.value


def datasets_read(schema: GraphQLSchema, document: DocumentNode) -> tuple[Dataset, ...]:
    """The datasets any operation or fragment of a valid `document` reads, in `Dataset` order."""
    type_info = TypeInfo(schema)
    finder = _DatasetsRead(type_info)
    visit(document, TypeInfoVisitor(type_info, finder))
    return tuple(dataset for dataset in Dataset if dataset in finder.datasets)
